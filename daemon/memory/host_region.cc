#include "daemon/memory/host_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/cuda/driver.h"
#include "common/errno_status.h"
#include "common/log.h"

namespace axon::daemon {

absl::Status HostRegion::Check(int fd, uint64_t length) {
  if (fd < 0) return absl::InvalidArgumentError("no memfd came with the request");
  if (length == 0) return absl::InvalidArgumentError("a region must hold at least one byte");
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    return absl::InvalidArgumentError(
        "the fd is not a memfd (host memory must come from memfd_create with "
        "MFD_ALLOW_SEALING)");
  }
  if ((seals & F_SEAL_SHRINK) == 0) {
    return absl::InvalidArgumentError(
        "the memfd is not sealed against shrinking (add F_SEAL_SHRINK after sizing it)");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat(memfd)");
  if (static_cast<uint64_t>(st.st_size) < length) {
    return absl::InvalidArgumentError(
        absl::StrCat("a region of ", length, " bytes, but the memfd holds ", st.st_size));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HostRegion>> HostRegion::Map(UniqueFd fd, uint64_t length) {
  if (auto st = Check(fd.get(), length); !st.ok()) return st;
  void* data = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (data == MAP_FAILED) return ErrnoStatus(errno, "mmap(memfd)");
  return std::unique_ptr<HostRegion>(
      new HostRegion(std::move(fd), static_cast<uint8_t*>(data), length));
}

void HostRegion::PinForGpu() {
  if (pin_tried_) return;
  pin_tried_ = true;  // once: a region that cannot be pinned is copied unpinned
  if (auto st = cuda::PinHost(data(), length()); !st.ok()) {
    spdlog::debug("host region of {} bytes stays unpinned: {}", length(), st.message());
    return;
  }
  pinned_ = true;
}

HostRegion::~HostRegion() {
  ReleaseRegistration();
  if (pinned_) cuda::UnpinHost(data());
  ::munmap(data(), length());
}

}  // namespace axon::daemon
