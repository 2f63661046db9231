// axond's file descriptors. At start the soft RLIMIT_NOFILE is raised to the
// hard limit. After that, new sessions and new connections to axond's Unix
// sockets are refused while fewer than a reserve of descriptors are free, so
// that the daemon runs out of room for new clients well before it runs out
// of descriptors: the clients it serves keep working, a refused client gets
// a clear error instead of a half-made session, and no session is ever left
// without the pidfd that watches its process.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace axon::daemon {

class FdBudget {
 public:
  // Raises the soft limit to the hard one and logs both.
  static FdBudget Raise(uint64_t reserve);
  // A budget against a given limit (tests).
  FdBudget(uint64_t limit, uint64_t reserve) : limit_(limit), reserve_(reserve) {}

  // New sessions: OK while more than the reserve is free; otherwise
  // RESOURCE_EXHAUSTED saying so and naming the key that keeps it.
  absl::Status CheckSession() const { return Check("new sessions", reserve_); }
  // New connections to `socket` ("the control socket"): OK while more than
  // half the reserve is free, so that once sessions are refused, axonctl
  // and the sessions' own calls still get through.
  absl::Status CheckConnection(absl::string_view socket) const;
  uint64_t limit() const { return limit_; }
  uint64_t reserve() const { return reserve_; }

 private:
  absl::Status Check(absl::string_view what, uint64_t keep) const;
  uint64_t limit_;
  uint64_t reserve_;
};

}  // namespace axon::daemon
