// Secrets: fresh random bytes from the kernel, and comparing secrets without
// an early exit (so timing does not reveal how much of a guess was right).
// Used for session tokens and for the peer handshake's nonces and proofs.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace axon {

// Fills `out` from getrandom(2).
absl::Status FillRandom(absl::Span<uint8_t> out);

bool ConstantTimeEqual(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b);
bool ConstantTimeEqual(absl::string_view a, absl::string_view b);

}  // namespace axon
