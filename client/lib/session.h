// libaxon's connection to its daemon: the gRPC control channel (Attach,
// Detach) and the session socket (fd passing, liveness), the per-message
// rings, and what it takes to re-attach to a restarted daemon. Internal.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "axon/client.h"
#include "axon/v1/control.grpc.pb.h"
#include "client/lib/forked.h"
#include "common/adaptive_mutex.h"
#include "common/reused_queue.h"
#include "common/ring/spsc_ring.h"
#include "common/unique_fd.h"
#include "common/wire/ring_ops.h"
#include "common/wire/session.h"

namespace axon::internal {

// A receive-area arrival's names are "endpoint\nfrom": the receiving
// endpoint, and the message it describes, its slot in `area`.
absl::string_view ArrivalEndpoint(const wire::Completion& arrival);
Message ArrivalMessage(const wire::Completion& arrival, const uint8_t* area, uint64_t slot_size);

// What the daemon knows of a session, kept by libaxon so that it can tell a
// restarted daemon again (Session::Reattach). All guarded by Session::mu.
struct Restorable {
  // Registered memory by region id: the request that registered it, and a
  // duplicate of the fd it passed (host memfds, VMM allocations).
  struct Region {
    wire::SessionRequest request;
    UniqueFd fd;
  };
  std::map<uint64_t, Region> regions;
  std::set<std::string> endpoints;  // bound by this session
};

struct Session {
  // What an operation reads until it completes: dropped as its completion is
  // drained (before Wait or a callback sees it); `length` replaces an OK
  // completion's.
  struct HeldOp {
    std::shared_ptr<void> keep;
    uint64_t length = 0;
  };
  std::unique_ptr<v1::Control::Stub> control;
  int timeout_ms = 10000;
  // Where it was made: in a fork() child of that process it is the
  // parent's, and this session refuses everything (client/lib/forked.h).
  const uint64_t fork_generation = ForkGeneration();
  bool forked_away() const { return ForkGeneration() != fork_generation; }
  absl::Status NotForked() const { return RefuseIfForkedSince(fork_generation); }
  std::string socket_path;  // the daemon's control socket
  std::string client_name;
  std::string placement;  // ClientOptions::placement, sent at every attach
  std::string node_name;
  // Whether a restarted daemon is re-attached to (ClientOptions::reconnect):
  // then the session keeps what Reattach needs. Set before use.
  bool keep_state = false;

  std::mutex mu;                      // the socket, the credentials and `restorable`
  uint64_t id = 0;                    // guarded by mu; a new one on each re-attach
  std::string token;                  // guarded by mu
  UniqueFd socket;                    // guarded by mu; invalid once detached
  std::atomic<bool> detached{false};  // for good: no more submissions, no reconnection
  // The session socket, for the wait loop and the reconnector to notice the
  // daemon hang up (-1 once detached).
  std::atomic<int> hangup_fd{-1};
  // No daemon serves the session now: every operation then pending has
  // failed UNAVAILABLE (kept receives aside), and new ones fail so at once.
  std::atomic<bool> daemon_gone{false};
  // A reconnector will bring the session back after the daemon went away.
  std::atomic<bool> reconnecting{false};
  // The daemon takes wire::kSubmissionQuiet sends (its Attach said so).
  std::atomic<bool> quiet_sends{false};
  uint32_t next_request = 1;  // guarded by mu
  uint64_t next_region = 1;   // guarded by mu: region ids are the client's to pick
  Restorable restorable;      // guarded by mu (only when keep_state)

  // The per-message rings, shared with the daemon (set up by SetupRings).
  AdaptiveMutex ring_mu;
  using RingLock = std::unique_lock<AdaptiveMutex>;
  std::unique_ptr<ring::SpscRing> submissions;  // guarded by ring_mu
  std::unique_ptr<ring::SpscRing> completions;  // guarded by ring_mu
  UniqueFd daemon_bell, client_bell;            // guarded by ring_mu
  void* ring_memory = nullptr;                  // guarded by ring_mu
  size_t ring_bytes = 0;
  // The previous connection's rings, bells and socket. A thread may still
  // spin on or poll them for a moment after a re-attach replaced them (it
  // took them under the lock and let it go), so they are freed one
  // re-attach later, not at once.
  struct Retired {
    std::unique_ptr<ring::SpscRing> submissions, completions;
    UniqueFd daemon_bell, client_bell, socket;
    void* memory = nullptr;
    size_t bytes = 0;
    ~Retired();
  };
  std::unique_ptr<Retired> retired;                          // guarded by ring_mu
  uint64_t next_op = 1;                                      // guarded by ring_mu
  absl::flat_hash_map<uint64_t, wire::Completion> finished;  // not yet waited for, by op id
  std::deque<wire::Completion> arrivals;                     // receive-area messages not yet taken
  // Completions drained, by any thread (written under ring_mu): a thread
  // spinning without the lock for its own sees that another took one.
  std::atomic<uint64_t> drains{0};
  const uint8_t* area = nullptr;  // the receive area, once set
  uint64_t area_slot_size = 0;
  uint64_t area_region = 0;
  // With keep_state (all guarded by ring_mu): the receive-area slots the
  // client holds (arrived, not released), and the receives it posted that
  // have not completed, by op id, which a re-attach posts again.
  absl::flat_hash_set<uint64_t> held_slots;
  absl::flat_hash_map<uint64_t, wire::Submission> kept;
  // What operations in flight read until they complete (EnqueueAll's hold),
  // by op id (guarded by ring_mu).
  absl::flat_hash_map<uint64_t, HeldOp> held_ops;
  // Op ids below this were submitted to a daemon that went away: those not
  // finished and not kept will never complete.
  uint64_t lost_below = 0;  // guarded by ring_mu
  // A re-attach is restoring the session: only it submits.
  bool replaying = false;  // guarded by ring_mu

  ~Session();
  // Attaches to the daemon at `socket_path` and sets up the rings.
  absl::Status Open();
  // One request and its reply over the session socket, `fds` attached.
  absl::StatusOr<wire::SessionReply> Call(wire::SessionRequest request, absl::Span<const int> fds);
  // Registers memory by `request` (a kRegister* request; its region id is
  // picked here) with `fds`; returns the region id.
  absl::StatusOr<uint64_t> Register(wire::SessionRequest request, absl::Span<const int> fds);
  absl::Status Unregister(uint64_t region_id);
  // Binds or unbinds an endpoint over the control channel.
  absl::StatusOr<std::string> BindEndpoint(const std::string& name);
  absl::Status UnbindEndpoint(const std::string& name);
  // This session's id and token, for a control-channel request.
  std::pair<uint64_t, std::string> Credentials();
  // Exposes a window (ids filled in here); returns its descriptor.
  absl::StatusOr<std::string> Expose(v1::ExposeRequest request);
  absl::Status Unexpose(uint64_t window_id);
  // Sends a call server's report (ids filled in here) over the control channel.
  absl::Status ReportCalls(v1::ReportCallsRequest request);
  // Creates the rings and hands them to the daemon.
  absl::Status SetupRings();
  // Puts one submission on the ring and returns its op id.
  absl::StatusOr<uint64_t> Enqueue(wire::Submission submission);
  using Callback = std::function<void(const wire::Completion&)>;
  // Puts several submissions on the ring back to back (no other thread's in
  // between), gives each its op id and returns the last's. `done`, if set,
  // runs once the last completes: registered before the lock is let go, so
  // no completion can come first. `keep`: a receive a re-attach posts again.
  // `hold`, if set, is held until the last completes (HeldOp).
  absl::StatusOr<uint64_t> EnqueueAll(absl::Span<wire::Submission> submissions,
                                      Callback done = nullptr, bool keep = false,
                                      HeldOp* hold = nullptr);
  // Gives receive-area slot `slot` back to the daemon.
  absl::Status ReleaseSlot(uint64_t slot);
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
  // While a reconnector works on a gone daemon, it waits for it.
  absl::Status WaitLoop(RingLock& lock, int timeout_ms, const std::function<bool()>& take);
  // `lock` holds ring_mu: runs the callbacks of finished operations.
  bool RunCallbacks(RingLock& lock);

  // Callbacks by op id and receive-area handlers by endpoint (guarded by
  // ring_mu). A completion whose callback is registered goes straight to
  // `due` when drained, so thousands of operations in flight cost nothing
  // per drain; RunCallbacks runs what is due with the lock released.
  absl::flat_hash_map<uint64_t, Callback> callbacks;
  // Shared, so that queueing an arrival for its handler copies a pointer
  // rather than the function (a heap allocation per arrival).
  using ArrivalHandler = std::shared_ptr<const Callback>;
  absl::flat_hash_map<std::string, ArrivalHandler> arrival_handlers;
  std::vector<std::pair<Callback, wire::Completion>> due;
  // Arrival handlers' runs, in arrival order (guarded by ring_mu). One
  // thread at a time runs them, taking one at a time: two threads driving
  // completions must not reorder an endpoint's messages, which a batch each
  // in `due` did. Another thread finding a runner leaves them to it. A
  // handler that waits through this session (Wait, a blocking send) runs
  // the next ones itself, still in order, on the same thread.
  ReusedQueue<std::pair<ArrivalHandler, wire::Completion>> arrivals_due;
  std::thread::id arrival_runner;  // guarded by ring_mu; none: no thread runs them
  // ring_mu held: runs arrivals_due unless another thread does.
  bool RunArrivals(RingLock& lock);
  // ring_mu held: arrival handlers wait that this thread may run now.
  bool ArrivalsToRun() const {
    return !arrivals_due.empty() &&
           (arrival_runner == std::thread::id() || arrival_runner == std::this_thread::get_id());
  }
  bool sleeper = false;        // guarded by ring_mu: a thread sleeps on the doorbell
  uint64_t callbacks_run = 0;  // guarded by ring_mu
  // After detaching: runs every callback still waiting with UNAVAILABLE (no
  // completion will come for it) and drops the arrival handlers, so that
  // nothing they hold (a call's state, pool blocks, buffers of this
  // session) is kept alive by the session itself.
  void FailPending();
  // ring_mu held: `done` runs once `op_id` completes (at once if it has).
  void AddCallback(uint64_t op_id, Callback done);
  // Drops the callback and hold of operation `op_id` (a quiet send whose
  // outcome the caller learned otherwise): true when they were still here,
  // so the callback never runs; false when its completion took them first.
  bool Forget(uint64_t op_id);
  std::condition_variable_any drained;
  // ring_mu held: the daemon hung up. Takes the completions already on the
  // ring, fails every other operation with a callback UNAVAILABLE (run by
  // the caller's next RunCallbacks), kept receives aside while reconnecting,
  // and marks the session so.
  void DaemonGone();
  // ring_mu held, the daemon gone and nobody reconnecting: fails the kept
  // receives UNAVAILABLE (callbacks run by the next RunCallbacks).
  void FailKept();
  absl::Status GoneStatus() const;
  // ring_mu held: moves every completion on the ring into `finished`.
  absl::Status DrainCompletions();
  void RingDaemon();
  absl::Status Detach();

  // Re-attaches to the daemon (restarted under the same socket) after it
  // went away: a new session, the same memory under the same region ids,
  // the receive area with the slots the client still holds, the same
  // endpoints, and the kept receives under their op ids. OK, or what could
  // not be restored (the session then runs without it); an error when no
  // new session could be set up (try again later).
  absl::Status Reattach();

 private:
  // mu held: Call without taking it.
  absl::StatusOr<wire::SessionReply> CallLocked(wire::SessionRequest request,
                                                absl::Span<const int> fds);
  // ring_mu held: pushes one entry with its op id set, draining completions
  // while the ring is full.
  absl::Status PushLocked(const wire::Submission& submission);
  // mu held: new rings for the socket now in `socket`, the old ones retired.
  absl::Status SetupRingsLocked();
  // mu held: a new session on the daemon (gRPC Attach) and its socket,
  // said hello on: replaces id, token and socket, and returns the old socket.
  absl::StatusOr<UniqueFd> AttachLocked();
  // mu held: binds `name` over the control channel.
  absl::StatusOr<std::string> BindLocked(const std::string& name);
  // mu held, the new rings up: restores the receive area, the endpoints and
  // the kept receives, adding what could not be restored to `problems`; an
  // error when the daemon went away meanwhile.
  absl::Status RestoreLocked(std::vector<std::string>& problems);
};

}  // namespace axon::internal
