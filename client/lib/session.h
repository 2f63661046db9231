// libaxon's connection to its daemon: the gRPC control channel (Attach,
// Detach) and the session socket (fd passing, liveness). Internal.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "axon/client.h"
#include "axon/v1/control.grpc.pb.h"
#include "common/ring/spsc_ring.h"
#include "common/unique_fd.h"
#include "common/wire/ring_ops.h"
#include "common/wire/session.h"

namespace axon::internal {

// A receive-area arrival's names are "endpoint\nfrom": the receiving
// endpoint, and the message it describes, its slot in `area`.
absl::string_view ArrivalEndpoint(const wire::Completion& arrival);
Message ArrivalMessage(const wire::Completion& arrival, const uint8_t* area, uint64_t slot_size);

struct Session {
  std::unique_ptr<v1::Control::Stub> control;
  int timeout_ms = 10000;
  uint64_t id = 0;
  std::string token;
  std::string node_name;

  std::mutex mu;
  UniqueFd socket;                    // guarded by mu; invalid once detached
  std::atomic<bool> detached{false};  // no more submissions: nobody reads them
  // The session socket, for the wait loop to notice the daemon hang up
  // (-1 once detached); and whether it did: then every operation still
  // pending has failed UNAVAILABLE, and new ones fail so at once.
  std::atomic<int> hangup_fd{-1};
  std::atomic<bool> daemon_gone{false};
  uint32_t next_request = 1;

  // The per-message rings, shared with the daemon (set up by SetupRings).
  std::mutex ring_mu;
  void* ring_memory = nullptr;
  size_t ring_bytes = 0;
  std::optional<ring::SpscRing> submissions;  // guarded by ring_mu
  std::optional<ring::SpscRing> completions;  // guarded by ring_mu
  UniqueFd daemon_bell, client_bell;
  uint64_t next_op = 1;                                      // guarded by ring_mu
  absl::flat_hash_map<uint64_t, wire::Completion> finished;  // not yet waited for, by op id
  std::deque<wire::Completion> arrivals;                     // receive-area messages not yet taken
  const uint8_t* area = nullptr;                             // the receive area, once set
  uint64_t area_slot_size = 0;

  ~Session();
  // One request and its reply over the session socket, `fds` attached.
  absl::StatusOr<wire::SessionReply> Call(wire::SessionRequest request, absl::Span<const int> fds);
  // Creates the rings and hands them to the daemon.
  absl::Status SetupRings();
  // Puts one submission on the ring and returns its op id.
  absl::StatusOr<uint64_t> Enqueue(wire::Submission submission);
  using Callback = std::function<void(const wire::Completion&)>;
  // Puts several submissions on the ring back to back (no other thread's in
  // between), gives each its op id and returns the last's. `done`, if set,
  // runs once the last completes: registered before the lock is let go, so
  // no completion can come first.
  absl::StatusOr<uint64_t> EnqueueAll(absl::Span<wire::Submission> submissions,
                                      Callback done = nullptr);
  // Waits for operation `op_id`: spins briefly, then sleeps on the doorbell.
  absl::StatusOr<wire::Completion> WaitFor(uint64_t op_id, int timeout_ms);
  // Waits for a receive-area message for `endpoint`.
  absl::StatusOr<wire::Completion> WaitForArrival(const std::string& endpoint, int timeout_ms);
  // Drives completions for up to `timeout_ms` (running callbacks that are due);
  // returns early once it ran at least one.
  absl::Status Progress(int timeout_ms);
  // `lock` holds ring_mu: drains completions until `take` finds what it
  // wants (returns true), spinning briefly and then sleeping on the doorbell.
  // One thread at a time sleeps on the doorbell, without the lock; the others
  // wait for it on `drained`. Runs due callbacks with the lock released.
  absl::Status WaitLoop(std::unique_lock<std::mutex>& lock, int timeout_ms,
                        const std::function<bool()>& take);
  // `lock` holds ring_mu: runs the callbacks of finished operations.
  bool RunCallbacks(std::unique_lock<std::mutex>& lock);

  // Callbacks by op id and receive-area handlers by endpoint (guarded by
  // ring_mu). A completion whose callback is registered goes straight to
  // `due` when drained, so thousands of operations in flight cost nothing
  // per drain; RunCallbacks runs what is due with the lock released.
  absl::flat_hash_map<uint64_t, Callback> callbacks;
  absl::flat_hash_map<std::string, std::function<void(const wire::Completion&)>> arrival_handlers;
  std::vector<std::pair<Callback, wire::Completion>> due;
  bool sleeper = false;        // guarded by ring_mu: a thread sleeps on the doorbell
  uint64_t callbacks_run = 0;  // guarded by ring_mu
  // After detaching: runs every callback still waiting with UNAVAILABLE (no
  // completion will come for it) and drops the arrival handlers, so that
  // nothing they hold (a call's state, pool blocks, buffers of this
  // session) is kept alive by the session itself.
  void FailPending();
  // ring_mu held: `done` runs once `op_id` completes (at once if it has).
  void AddCallback(uint64_t op_id, Callback done);
  std::condition_variable drained;
  // ring_mu held: the daemon hung up. Fails every operation with a
  // callback UNAVAILABLE (run by the caller's next RunCallbacks) and marks
  // the session so.
  void DaemonGone();
  static absl::Status GoneStatus();
  // ring_mu held: moves every completion on the ring into `finished`.
  absl::Status DrainCompletions();
  void RingDaemon();
  absl::Status Detach();
};

}  // namespace axon::internal
