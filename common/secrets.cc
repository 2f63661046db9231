#include "common/secrets.h"

#include <sys/random.h>

#include <cerrno>

#include "common/errno_status.h"

namespace axon {

absl::Status FillRandom(absl::Span<uint8_t> out) {
  size_t filled = 0;
  while (filled < out.size()) {
    const ssize_t n = ::getrandom(out.data() + filled, out.size() - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "getrandom");
    }
    filled += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

bool ConstantTimeEqual(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  uint8_t diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<uint8_t>(a[i] ^ b[i]);
  return diff == 0;
}

bool ConstantTimeEqual(absl::string_view a, absl::string_view b) {
  return ConstantTimeEqual(
      absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(a.data()), a.size()),
      absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
}

}  // namespace axon
