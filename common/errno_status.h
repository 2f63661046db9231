// Turns a failed system call into an absl::Status that says what was being
// done and why it failed, with a status code that matches the errno.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace axon {

// `what` describes the operation, e.g. "bind /run/axon/axond.sock".
absl::Status ErrnoStatus(int err, absl::string_view what);

}  // namespace axon
