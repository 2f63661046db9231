// The daemon's end of the per-message path: it consumes each session's
// submission ring and answers on its completion ring, on the UCX thread
// (every method ends in FromLoop). While work keeps arriving it polls the
// rings without sleeping (for up to kSpin after the last entry); then it
// announces it sleeps and waits on the sessions' doorbells like on any fd.
#pragma once

#include <deque>
#include <map>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/ring/spsc_ring.h"
#include "common/unique_fd.h"
#include "common/wire/ring_ops.h"
#include "daemon/memory/host_region.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon {

struct SessionRings {
  std::unique_ptr<HostRegion> memory;  // both rings
  UniqueFd daemon_bell;                // the client writes it to wake the daemon
  UniqueFd client_bell;                // the daemon writes it to wake the client
};

class RingEngine {
 public:
  // How long the engine keeps polling after the last entry before it sleeps.
  static constexpr absl::Duration kSpin = absl::Microseconds(50);

  explicit RingEngine(ucx::Loop& loop) : loop_(loop) {}
  ~RingEngine();

  // Attaches the rings in `rings.memory` (which must be large enough for
  // both) and starts serving them.
  absl::Status AddSessionFromLoop(uint64_t session, SessionRings rings);
  void RemoveSessionFromLoop(uint64_t session);

  // For ucx::Loop::SetPollerFromLoop.
  bool PollFromLoop();
  bool PrepareToSleepFromLoop();

  uint64_t ops_completed() const { return ops_completed_; }

 private:
  struct Session {
    SessionRings rings;
    ring::SpscRing submissions;
    ring::SpscRing completions;
    std::deque<wire::Completion> backlog;  // completions waiting for room
    bool broken = false;                   // its rings were found corrupt
  };
  // Drains one session's submissions; false when the session broke.
  bool Serve(uint64_t id, Session& session, bool& did_work);
  void Complete(Session& session, const wire::Completion& completion);
  bool Flush(Session& session);

  ucx::Loop& loop_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  absl::Time last_work_ = absl::InfinitePast();
  uint64_t ops_completed_ = 0;
};

}  // namespace axon::daemon
