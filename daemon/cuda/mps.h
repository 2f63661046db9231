// MPS (the CUDA Multi-Process Service) and whose it is. An MPS server serves
// one user at a time: a CUDA process of another user waits, at its first
// CUDA call, until that server's clients have all exited. axond looks before
// its first CUDA call so that such a wait is explained in its log.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace axon::daemon {

// The uid of a running nvidia-cuda-mps-server found under `proc_root`
// (normally /proc) whose uid is not `self`, if any. Processes that cannot be
// read (another user's, under hidepid) are skipped.
std::optional<uid_t> MpsServerOfAnotherUser(const std::string& proc_root, uid_t self);

}  // namespace axon::daemon
