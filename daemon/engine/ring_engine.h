// The daemon's end of the per-message path: it consumes each session's
// submission ring and answers on its completion ring, on the UCX thread
// (every method ends in FromLoop). While work keeps arriving it polls the
// rings without sleeping (for up to kSpin after the last entry); then it
// announces it sleeps and waits on the sessions' doorbells like on any fd.
//
// Messages between endpoints on this node: a send waits until the receiver
// posts a buffer with the same tag (back-pressure, never a drop), then the
// engine copies region to region and completes both. Order is kept per
// (destination endpoint, tag), so per (source, destination) pair too.
// Messages to and from other nodes go through the RemotePath; what arrives
// from there queues and matches here just like a local send.
#pragma once

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/last_entry.h"
#include "common/latency_histogram.h"
#include "common/match_queue.h"
#include "common/reused_queue.h"
#include "common/ring/spsc_ring.h"
#include "common/unique_fd.h"
#include "common/wire/ring_ops.h"
#include "daemon/cuda/gpu_copier.h"
#include "daemon/engine/host_copier.h"
#include "daemon/engine/remote_path.h"
#include "daemon/memory/host_region.h"
#include "daemon/session/session_manager.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon {

// What a session moved, for `axonctl sessions`.
struct SessionTraffic {
  uint64_t in_flight = 0;  // operations submitted and not yet completed
  uint64_t messages_sent = 0, bytes_sent = 0;
  uint64_t messages_received = 0, bytes_received = 0;
  // Filled in by TrafficFromLoop: entries on the submission ring not yet
  // taken, and completions not yet taken by the client (on its ring or
  // waiting for room there).
  uint64_t submissions_queued = 0, completions_queued = 0;
};

// How long operations took, submission to completion, and how many failed,
// for the metrics endpoint. Latencies are of a sample: operations whose op
// id is a multiple of kLatencySample (ids are the client's sequence, so the
// sample is spread evenly), which keeps the clock off the common path.
struct OperationStats {
  static constexpr uint64_t kLatencySample = 16;
  LatencyHistogram send_latency, receive_latency;
  // By absl::StatusCode (0 stays 0): completions that carried an error.
  std::array<uint64_t, 17> failed{};
};

// What the engine did with GPU memory, for `axonctl stats`.
struct GpuTraffic {
  uint64_t copies = 0, copy_bytes = 0;
  uint64_t staged = 0;        // messages staged through pinned host memory
  uint64_t direct = 0;        // messages UCX moved in device memory
  uint64_t by_handle = 0;     // messages by CUDA IPC handle (daemons on one host)
  uint64_t handles_open = 0;  // peers' GPU allocations this daemon holds open by handle
  uint64_t bounce_allocations = 0;
  uint64_t bounce_idle_device_bytes = 0, bounce_idle_pinned_bytes = 0;
  uint64_t staged_bytes = 0, direct_bytes = 0, by_handle_bytes = 0;  // of the messages above
  uint64_t bounce_in_use_device_bytes = 0, bounce_in_use_pinned_bytes = 0;
};

struct SessionRings {
  std::unique_ptr<HostRegion> memory;  // both rings
  UniqueFd daemon_bell;                // the client writes it to wake the daemon
  UniqueFd client_bell;                // the daemon writes it to wake the client
};

class RingEngine {
 public:
  // How long the engine keeps polling after the last entry before it sleeps.
  static constexpr absl::Duration kSpin = absl::Microseconds(50);

  RingEngine(ucx::Loop& loop, SessionManager& sessions, std::string node_name,
             uint64_t max_in_flight)
      : loop_(loop),
        sessions_manager_(sessions),
        node_name_(std::move(node_name)),
        max_in_flight_(max_in_flight) {}
  ~RingEngine();

  // Attaches the rings in `rings.memory` (which must be large enough for
  // both) and starts serving them.
  absl::Status AddSessionFromLoop(uint64_t session, SessionRings rings);
  // Connects the engine to other nodes (without it, sends there fail).
  void AttachPeersFromLoop(PeerManager& peers, RemotePath::Limits limits);
  // Copies of at least `min_bytes` between two sessions of this node go to
  // `threads` copy threads of their own (HostCopier).
  absl::Status StartCopyThreadsFromLoop(int threads, uint64_t min_bytes);
  void RemoveSessionFromLoop(uint64_t session);

  // For ucx::Loop::SetPollerFromLoop.
  ucx::Polled PollFromLoop();
  bool PrepareToSleepFromLoop();

  uint64_t ops_completed() const { return ops_completed_; }
  GpuTraffic GpuTrafficFromLoop() const {
    return {copier_.copies(),
            copier_.bytes(),
            remote_ ? remote_->staged() : 0,
            remote_ ? remote_->direct() : 0,
            remote_ ? remote_->by_handle() : 0,
            remote_ ? remote_->handles_open() : 0,
            remote_ ? remote_->bounce_allocations() : 0,
            remote_ ? remote_->bounce_idle_device_bytes() : 0,
            remote_ ? remote_->bounce_idle_pinned_bytes() : 0,
            remote_ ? remote_->staged_bytes() : 0,
            remote_ ? remote_->direct_bytes() : 0,
            remote_ ? remote_->by_handle_bytes() : 0,
            remote_ ? remote_->bounce_in_use_device_bytes() : 0,
            remote_ ? remote_->bounce_in_use_pinned_bytes() : 0};
  }
  // Per session, by id.
  std::map<uint64_t, SessionTraffic> TrafficFromLoop() const;
  const OperationStats& OperationStatsFromLoop() const { return op_stats_; }

 private:
  // One side of a message waiting for the other.
  struct Pending {
    uint64_t session = 0;
    uint64_t op_id = 0;
    std::shared_ptr<Region> region;  // kept mapped while pending
    uint64_t offset = 0;
    uint64_t length = 0;  // sends: of the whole message
    uint64_t tag = 0;
    PartList more;                       // a gather send: the parts after the first
    std::shared_ptr<Incoming> incoming;  // a send from another node (no session, no region)
    // Sends from here: the sending endpoint; receives: the receiving
    // endpoint. (A send from another node is named by `incoming`.)
    std::string from;
    // Receives that name their sender: its node and endpoint (empty: any).
    std::string source_node, source_endpoint;
  };
  // Whether `receive` takes a message from `node`/`endpoint` with `tag`.
  static bool Accepts(const Pending& receive, uint64_t tag, absl::string_view node,
                      absl::string_view endpoint) {
    return receive.tag == tag &&
           (receive.source_endpoint.empty() ||
            (receive.source_endpoint == endpoint && receive.source_node == node));
  }
  // The same for `send`, from here or from another node.
  bool Accepts(const Pending& receive, const Pending& send) const {
    return send.incoming ? Accepts(receive, send.tag, send.incoming->node, send.incoming->from)
                         : Accepts(receive, send.tag, node_name_, send.from);
  }
  // A session's receive area: messages with no posted receive land in its
  // free slots, and the client releases each slot when done with it.
  struct Area {
    std::shared_ptr<Region> region;  // host memory
    uint64_t slot_size = 0;
    std::vector<uint64_t> free;  // slot indexes
    // Messages landing or landed, in the order they were taken: a message is
    // announced only after every earlier one (a rendezvous pull may finish
    // after a later eager copy).
    struct Landing {
      uint64_t slot;
      bool done = false, failed = false;
      wire::Completion arrival;
    };
    ReusedQueue<Landing> landing;
    uint64_t landing_base = 0;  // sequence of landing.front()
  };
  struct EndpointQueues {
    // Matched by tag in posting order; kept storage: a queue per endpoint
    // allocates nothing per message.
    MatchQueue<Pending> receives;
    MatchQueue<Pending> sends;
  };
  struct Session {
    SessionRings rings;
    ring::SpscRing submissions;
    ring::SpscRing completions;
    // Completions waiting for room on the ring, in order: a vector taken
    // from the front and reused once empty (a deque of these 232-byte
    // entries allocated a block for every second one).
    std::vector<wire::Completion> backlog;
    size_t backlog_next = 0;
    bool backlog_empty() const { return backlog_next == backlog.size(); }
    // Completions went straight onto the ring since the last Flush, which
    // rings the doorbell if the client sleeps (one check per poll).
    bool unrung = false;
    bool broken = false;  // its rings were found corrupt
    SessionTraffic traffic;
    std::optional<Area> area;
    // A gather send being submitted: its parts so far, or why it failed.
    PartList gathering;
    absl::Status gather_error;
    // SessionManager::FindRegion through a cache (no lock per operation),
    // good while region_generation() stays `regions_seen`. Weak: an
    // unregistered region is unmapped as soon as nothing in flight holds it.
    absl::flat_hash_map<uint64_t, std::weak_ptr<Region>> regions;
    uint64_t regions_seen = ~uint64_t{0};
    // Operations with a deadline not yet completed: what a compaction of
    // deadlines_ keeps.
    absl::flat_hash_set<uint64_t> deadline_ops;
    // Operations in the latency sample (OperationStats), not yet completed.
    struct Sampled {
      uint64_t op_id;
      bool send;
      std::chrono::steady_clock::time_point started;
    };
    std::vector<Sampled> sampled;
  };
  // Starts timing `submission` if it is in the latency sample.
  static void Sample(Session& session, const wire::Submission& submission);
  // Ends the timing of `op_id`, if it is being timed.
  void EndSample(Session& session, uint64_t op_id);
  // Copies a local send's bytes, every part in order, to `into` (host memory
  // on both sides).
  static void CopyOut(const Pending& send, uint8_t* into);
  // Copies a local send's bytes to `into` in region `to`, then runs `done`:
  // at once between host regions, once the GPU copies finish otherwise.
  void CopyLocal(const Pending& send, const std::shared_ptr<Region>& to, uint8_t* into,
                 absl::AnyInvocable<void(absl::Status)> done);
  // The same done at once for host memory on both sides (the common case:
  // no callback to build); false when the GPU must copy (use CopyLocal).
  bool CopyLocalNow(const Pending& send, const Region& to, uint8_t* into);
  // Bytes [offset, offset + length) of session `id`'s region `region`, or
  // INVALID_ARGUMENT (unknown region, bytes outside it, overflow included).
  absl::StatusOr<Part> FindPart(uint64_t id, Session& session, uint64_t region, uint64_t offset,
                                uint64_t length);
  // A kSend entry with kSubmissionMore: one part of a gather send.
  void GatherPart(uint64_t id, Session& session, const wire::Submission& submission);
  // Ring ops on the receive area.
  void SetArea(uint64_t id, Session& session, const wire::Submission& submission);
  void Release(uint64_t id, Session& session, const wire::Submission& submission);
  void Claim(uint64_t id, Session& session, const wire::Submission& submission);
  // Lands `send` (for endpoint `to`) in a free slot of its owner's receive
  // area, if it has one that fits; false otherwise.
  bool TryArea(const std::string& to, Pending& send);
  // Moves waiting sends into free slots of session `id`'s area, in order.
  void FillArea(uint64_t id);
  // Queues `send` for endpoint `to`, unless the receive area takes it.
  void Park(const std::string& to, Pending send);
  // Landing number `sequence` of session `id`'s area finished.
  void Landed(uint64_t id, uint64_t sequence, bool ok);
  // Counts a message that completed for session `id`.
  void Count(uint64_t id, bool sent, uint64_t bytes);
  // Drains one session's submissions; false when the session broke.
  bool Serve(uint64_t id, Session& session, bool& did_work);
  void Complete(Session& session, const wire::Completion& completion);
  // Onto the ring now (false: the ring is full, or corrupt: `broken` set).
  // Only when nothing waits in the backlog.
  bool Pushed(Session& session, absl::Span<const uint8_t> bytes);
  // Completes operation `op_id` of session `id`, if the session is still here.
  void Complete(uint64_t id, uint64_t op_id, absl::Status status, uint64_t length = 0,
                uint64_t tag = 0);
  // The same for a message's send (`sent`) or receive, counted in session
  // `id`'s traffic when it succeeded: one session lookup for both.
  void CompleteMessage(uint64_t id, bool sent, uint64_t op_id, absl::Status status, uint64_t length,
                       uint64_t tag);
  bool Flush(Session& session);
  void Handle(uint64_t id, Session& session, const wire::Submission& submission);
  // Checks the endpoint and region of a send or receive.
  absl::StatusOr<Pending> Prepare(uint64_t id, Session& session,
                                  const wire::Submission& submission);
  void Deliver(const Pending& send, const Pending& receive);
  // Deliver for a message from another node (`send.incoming`).
  void DeliverIncoming(const std::shared_ptr<Incoming>& message, const Pending& receive);
  // `node` and `to` are views of the submission (copied into the send).
  void SendRemote(uint64_t id, Pending&& send, absl::string_view node, absl::string_view to);
  void OnArrived(const std::shared_ptr<Incoming>& message);
  bool Withdraw(const std::string& node, uint64_t message_id);
  void DropFromNode(const std::string& node);
  // SessionManager::EndpointOwner through a cache (no lock per message).
  std::optional<uint64_t> Owner(absl::string_view endpoint);
  // Fails sends waiting on endpoints nobody holds any more, and receives
  // waiting for a message from one.
  void FailOrphanedSends();
  // Fails receives that name a sender on `node` for which `gone` holds.
  void FailReceivesFrom(absl::string_view node, const absl::Status& why,
                        const std::function<bool(absl::string_view)>& gone);
  // Completes pending operation `op_id` of session `id` with `why`, if it is
  // still pending here or on the remote path; false if it is not.
  bool Abort(uint64_t id, uint64_t op_id, const absl::Status& why);
  // Deadlines: a timerfd in the loop set for the earliest one.
  void AddDeadline(uint64_t id, uint64_t op_id, uint32_t timeout_ms);
  void OnDeadlineTimer();
  // Drops the deadlines of operations that completed.
  void CompactDeadlines();
  void ArmDeadlineTimer();

  ucx::Loop& loop_;
  SessionManager& sessions_manager_;
  const std::string node_name_;
  const uint64_t max_in_flight_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::map<std::string, EndpointQueues> endpoints_;  // by destination endpoint
  // endpoints_[name], the entry found last first: a send and its receive
  // name the same one.
  EndpointQueues& QueuesOf(const std::string& name) {
    return last_queues_.FindOrAdd(endpoints_, name);
  }
  LastEntry<std::map<std::string, EndpointQueues>> last_queues_;
  GpuCopier copier_;                         // GPU copies, polled with the rings
  std::unique_ptr<HostCopier> host_copier_;  // large host copies; null: all on this thread
  std::unique_ptr<RemotePath> remote_;       // null without a peer plane
  // Endpoint -> session, looked up by view (no string built per message), as of:
  absl::flat_hash_map<std::string, uint64_t> owners_;
  // The last endpoint found there and its session (0: none; session ids
  // start at 1). The name is a copy: a rehash moves the map's keys.
  std::pair<std::string, uint64_t> last_owner_;
  uint64_t owners_generation_ = ~uint64_t{0};
  struct Deadline {
    absl::Time when;
    uint64_t session, op_id;
    uint32_t timeout_ms;
    // For a min-heap: the earliest at the front.
    bool operator<(const Deadline& other) const { return when > other.when; }
  };
  // A heap in a vector kept from op to op: adding a deadline (nearly every
  // operation has one) allocates nothing. Completed operations stay in it
  // until their time comes and then find nothing to abort.
  std::vector<Deadline> deadlines_;
  // Past this size the heap drops the deadlines of completed operations.
  size_t deadlines_compact_at_ = 4096;
  UniqueFd deadline_timer_;  // created with the first deadline
  absl::Time last_work_ = absl::InfinitePast();
  bool just_worked_ = false;  // the last poll found work; last_work_ is stale
  uint32_t idle_polls_ = 0;
  uint64_t ops_completed_ = 0;
  OperationStats op_stats_;
};

}  // namespace axon::daemon
