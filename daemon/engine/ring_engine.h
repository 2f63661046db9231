// RingEngine is the daemon's end of the per-message path: ring I/O. It
// consumes each session's submission ring and answers on its completion
// ring, on the UCX thread (every method ends in FromLoop). While work keeps
// arriving it polls the rings without sleeping (for up to kSpin after the
// last entry); then it announces it sleeps and waits on the sessions'
// doorbells like on any fd.
//
// What it reads off a ring goes to the Router (a send: to the Matcher for an
// endpoint here, to the RemotePath for another node) or to the Matcher (a
// receive, the receive area); what arrives from other nodes goes to the
// Matcher too. The engine is the matcher's sink: it moves the bytes of each
// match (delivery.cc) and completes the operations (completions.cc).
#pragma once

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/latency_histogram.h"
#include "common/mailbox.h"
#include "common/ring/spsc_ring.h"
#include "common/unique_fd.h"
#include "common/wire/ring_ops.h"
#include "common/wire/window.h"
#include "daemon/cuda/gpu_copier.h"
#include "daemon/engine/deadlines.h"
#include "daemon/engine/host_copier.h"
#include "daemon/engine/matcher.h"
#include "daemon/engine/remote_path.h"
#include "daemon/engine/router.h"
#include "daemon/memory/host_region.h"
#include "daemon/peer/shard_peers.h"
#include "daemon/session/session_manager.h"
#include "daemon/ucx/loop.h"
#include "daemon/window/window_table.h"

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
  // Adds another engine shard's.
  void Merge(const OperationStats& other) {
    send_latency.Merge(other.send_latency);
    receive_latency.Merge(other.receive_latency);
    for (size_t i = 0; i < failed.size(); ++i) failed[i] += other.failed[i];
  }
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
  // Adds another engine shard's.
  GpuTraffic& operator+=(const GpuTraffic& o) {
    copies += o.copies;
    copy_bytes += o.copy_bytes;
    staged += o.staged;
    direct += o.direct;
    by_handle += o.by_handle;
    handles_open += o.handles_open;
    bounce_allocations += o.bounce_allocations;
    bounce_idle_device_bytes += o.bounce_idle_device_bytes;
    bounce_idle_pinned_bytes += o.bounce_idle_pinned_bytes;
    staged_bytes += o.staged_bytes;
    direct_bytes += o.direct_bytes;
    by_handle_bytes += o.by_handle_bytes;
    bounce_in_use_device_bytes += o.bounce_in_use_device_bytes;
    bounce_in_use_pinned_bytes += o.bounce_in_use_pinned_bytes;
    return *this;
  }
};

struct SessionRings {
  std::unique_ptr<HostRegion> memory;  // both rings
  UniqueFd daemon_bell;                // the client writes it to wake the daemon
  UniqueFd client_bell;                // the daemon writes it to wake the client
};

class EngineShards;

class RingEngine final : private MatchSink {
 public:
  // How long the engine keeps polling after the last entry before it sleeps.
  static constexpr absl::Duration kSpin = absl::Microseconds(50);

  // On `loop`'s thread.
  RingEngine(ucx::Loop& loop, SessionManager& sessions, std::string node_name,
             uint64_t max_in_flight);
  ~RingEngine();

  // Attaches the rings in `rings.memory` (which must be large enough for
  // both) and starts serving them.
  absl::Status AddSessionFromLoop(uint64_t session, SessionRings rings);
  // Connects the engine to other nodes (without it, sends there fail).
  void AttachPeersFromLoop(PeerPlane& peers, RemotePath::Limits limits);
  // A shard > 0's own links to the peers' shards (EngineShards, shard
  // links): it keeps them, and sends its sessions' messages on them.
  void AttachShardPeersFromLoop(std::unique_ptr<ShardPeers> peers, RemotePath::Limits limits);
  // Null unless attached.
  ShardPeers* shard_peers() const { return shard_peers_.get(); }
  // Copies of at least `min_bytes` between two sessions of this node go to
  // `threads` copy threads of their own (HostCopier).
  absl::Status StartCopyThreadsFromLoop(int threads, uint64_t min_bytes);
  // Stops serving `session`'s rings; what waits for it or from it goes,
  // here and on the other shards.
  void RemoveSessionFromLoop(uint64_t session);
  // Makes this engine shard `index` of `shards`: what concerns another
  // shard's sessions goes there (hops.cc). Before the first session.
  void JoinFromLoop(EngineShards& shards, size_t index);
  // Posts nothing to other shards from now on (they are going too).
  void CloseFromLoop() { closing_ = true; }

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
  struct Session {
    uint64_t id = 0;
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
    // A gather send being submitted: its parts so far, or why it failed.
    PartList gathering;
    absl::Status gather_error;
    // SessionManager::FindRegion through a cache (no lock per operation),
    // good while region_generation() stays `regions_seen`. Weak: an
    // unregistered region is unmapped as soon as nothing in flight holds it.
    absl::flat_hash_map<uint64_t, std::weak_ptr<Region>> regions;
    uint64_t regions_seen = ~uint64_t{0};
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
  // MatchSink: the matcher's decisions, carried out (delivery.cc).
  std::optional<uint64_t> Owner(absl::string_view endpoint) override;
  void Deliver(Pending& send, const Pending& receive) override;
  void LandInArea(const Pending& send, uint64_t owner, const std::shared_ptr<Region>& area,
                  uint8_t* into, uint64_t sequence) override;
  void Fail(uint64_t session, uint64_t op_id, const absl::Status& why) override {
    Complete(session, op_id, why);
  }
  void Announce(uint64_t session, const wire::Completion& arrival) override;
  void Refuse(const Incoming& message, const absl::Status& why) override;

  // A message of this shard's that went through shard 0 completed.
  void SentThroughShard0(uint64_t session, uint64_t op_id);
  // One fewer of this shard's messages waits on shard 0 for `node`.
  void LeftShard0(const std::string& node);

  // Hops between engine shards (hops.cc). Whether session `id` is served
  // here (always, without shards).
  bool Here(uint64_t id) const;
  // An id another shard hands back here (a read token, a landing): this
  // shard's index in the high byte (the config allows 64 shards), `count`
  // below; TaggedShard reads the index back.
  uint64_t Tagged(uint64_t count) const { return (uint64_t{index_} << 56) | count; }
  static size_t TaggedShard(uint64_t id) { return static_cast<size_t>(id >> 56); }
  // What one shard hands another, in order: a send for one of its
  // endpoints, a completion for one of its sessions, a send for shard 0's
  // remote path, a stand-in's landing and word that it landed, or other
  // work. The ones a message takes every time are typed rather than
  // closures, which would each be a heap allocation.
  struct SendHop {
    Pending send;
    std::string to;
  };
  struct DoneHop {
    uint64_t session = 0, op_id = 0;
    absl::Status status;
    uint64_t length = 0, tag = 0;
    std::optional<bool> sent;  // CompleteMessage's; none: Complete
    bool quiet = false;        // CompleteMessage's
  };
  struct RemoteHop {
    Outgoing send;
  };
  // Lands the message handed over under `key` (LandHanded), then tells
  // the shard in `landing`'s high byte that it landed (landings_).
  struct LandHop {
    uint64_t key = 0;
    std::shared_ptr<Region> region;
    uint8_t* into = nullptr;
    uint64_t landing = 0;
  };
  struct LandedHop {
    uint64_t landing = 0;
    absl::Status status;
  };
  using Hop = std::variant<SendHop, DoneHop, RemoteHop, LandHop, LandedHop,
                           absl::AnyInvocable<void(RingEngine&)>>;
  // Queues `hop` for shard `shard`'s mailbox: it goes at the end of this
  // poll (SendHops), with the others for that shard, under one lock.
  void Hand(size_t shard, Hop hop);
  // Puts what this poll handed each shard in its mailbox, and wakes those
  // that sleep.
  void SendHops();
  // Carries out what other shards handed this one; whether there was any.
  bool TakeHops();
  // Runs `fn(engine)` on shard `shard`'s engine, on its thread, after what
  // this shard handed it before.
  template <typename Fn>
  void OnShard(size_t shard, Fn fn);
  // Runs `fn(engine)` on every other shard's engine.
  template <typename Fn>
  void OnOthers(Fn fn);
  // Completes operation `op_id` of session `id` on its shard, when that is
  // another one: CompleteMessage with `sent`, else Complete.
  void HopCompletion(uint64_t id, std::optional<bool> sent, uint64_t op_id, absl::Status status,
                     uint64_t length, uint64_t tag, bool quiet = false);
  // A message from another node for an endpoint here or on another shard.
  void Arrive(const std::shared_ptr<Incoming>& message);
  // Hands `message` to shard `shard` as a stand-in (Incoming::handed).
  void HandOver(const std::shared_ptr<Incoming>& message, size_t shard);
  // Lands the message handed over under `key` at `into`, then runs `done`
  // here; fails it when the message went meanwhile.
  void LandHanded(uint64_t key, std::shared_ptr<Region> region, uint8_t* into,
                  absl::AnyInvocable<void(absl::Status)> done);
  // LandThen for a stand-in: lands it on its shard, then runs `landed` here.
  void LandElsewhere(const Incoming& stand_in, std::shared_ptr<Region> region, uint8_t* into,
                     absl::AnyInvocable<void(absl::Status)> landed);
  void RefuseHanded(uint64_t key, const absl::Status& why);
  // The remote path's hooks.withdraw and hooks.node_down, for every shard.
  bool Withdraw(const std::string& node, uint64_t message_id);
  void NodeDown(const std::string& node);
  // Session `id` closed: what waits here from it or for it goes.
  void ForgetSession(uint64_t id);
  // The same on the other shards.
  void ForgetSessionElsewhere(uint64_t id);
  // Aborts `op_id` of session `id` wherever it waits, then runs `answer`
  // (may be empty) here with whether it was found.
  void AbortAnywhere(uint64_t id, uint64_t op_id, const absl::Status& why,
                     absl::AnyInvocable<void(RingEngine&, bool)> answer);

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
  // Copies a local send's bytes to `into` in region `to`, then runs `done`
  // with the result: called in place when the copy is done at once (no
  // callback object is built on that common path), else by CopyLocal.
  template <typename Done>
  void CopyThen(const Pending& send, const std::shared_ptr<Region>& to, uint8_t* into, Done done);
  // The same for a message from another node: lands it (the remote path
  // acknowledges it), then runs `landed` with the result.
  template <typename Landed>
  void LandThen(const std::shared_ptr<Incoming>& message, const std::shared_ptr<Region>& region,
                uint8_t* into, Landed landed);

  // Bytes [offset, offset + length) of session `id`'s region `region`, or
  // INVALID_ARGUMENT (unknown region, bytes outside it, overflow included).
  absl::StatusOr<Part> FindPart(uint64_t id, Session& session, uint64_t region, uint64_t offset,
                                uint64_t length);
  // A kSend entry with kSubmissionMore: one part of a gather send.
  void GatherPart(uint64_t id, Session& session, const wire::Submission& submission);
  void SetArea(uint64_t id, const wire::Submission& submission);
  // One-sided Write and Read on this node's windows (windows.cc).
  struct WindowCopies;
  struct BlockCopy;
  void WindowOp(uint64_t id, Session& session, const wire::Submission& submission);
  // An operation's host-to-host blocks: on this thread, or the copy threads.
  void CopyHostBlocks(absl::Span<const BlockCopy* const> host, uint64_t bytes,
                      const std::shared_ptr<WindowCopies>& state);
  // One of an operation's copies (a block, a device's batch) finished.
  void OneCopied(WindowCopies& state, absl::Status status);
  // An operation's blocks were copied (or failed): notify, or complete it.
  void WindowCopied(WindowCopies& done);
  // The same for a window on node `node`: its blocks go as data frames.
  struct RemoteWindow {
    size_t left = 0;  // frames not yet answered
    uint64_t bytes = 0;
    absl::Status status;
    std::string node, from;
    wire::WindowTarget window;
    // The notification, still to send: bytes of the list in the client's region.
    bool notify = false;
    uint64_t notify_tag = 0;
    Part notify_bytes;
    std::vector<uint64_t> read_tokens;  // reads: the replies' landing spots (ReadTarget)
  };
  // Where a reply to a remote read lands, by token (on the shard with the
  // remote path).
  struct ReadTarget {
    uint64_t session = 0;  // the reader's
    std::shared_ptr<Region> region;
    uint64_t offset = 0, length = 0;
  };
  // A reply to a read of a window here, in flight: the request it answers
  // once acknowledged, and the hold on the window meanwhile.
  struct ReadReply {
    std::shared_ptr<Incoming> request;
    std::shared_ptr<WindowTable::Grant> window;
  };
  void RemoteWindowOp(uint64_t id, Session& session, const wire::Submission& submission,
                      const wire::WindowOpList& list, Part list_part, absl::string_view node);
  // The entry counting operation (id, submission.op_id)'s `frames` frames of
  // `kind` to window list.window on `node`, with its notification still to
  // send (list_part holds its bytes).
  RemoteWindow& TrackRemoteWindow(uint64_t id, const wire::Submission& submission,
                                  const wire::WindowOpList& list, Part list_part,
                                  absl::string_view node, uint64_t bytes, size_t frames,
                                  wire::WindowFrame kind);
  // The RMA form of RemoteWindowOp: host blocks, for a window whose owner
  // serves RMA (the list says so); `parts` checked already.
  void RmaWindowOp(uint64_t id, const wire::Submission& submission, const wire::WindowOpList& list,
                   Part list_part, absl::string_view node, std::vector<Part> parts, uint64_t bytes);
  // A frame of a remote window operation of session `id` was answered: true
  // when (id, op_id) is one (it completes once all are).
  bool WindowFrameAnswered(uint64_t id, uint64_t op_id, const absl::Status& status);
  // Whether the completion of (id, op_id) is a one-sided frame's, which it
  // then took: a reply to a read of a window here (session 0, the
  // daemon's own), or a frame of a remote window operation.
  bool TookWindowCompletion(uint64_t id, uint64_t op_id, const absl::Status& status) {
    if (id == 0) {
      ReadReplyAnswered(op_id, status);
      return true;
    }
    return !window_ops_.empty() && WindowFrameAnswered(id, op_id, status);
  }
  // FAILED_PRECONDITION naming `endpoint`, which the submitting session did
  // not bind.
  static absl::Status NotBound(absl::string_view endpoint) {
    return absl::FailedPreconditionError(
        absl::StrCat("endpoint '", endpoint, "' is not bound by this session"));
  }
  // A window frame from another node, for a window here.
  void WindowArrive(const std::shared_ptr<Incoming>& message);
  // An RMA request's notification, delivered after its blocks.
  struct Notified {
    std::string endpoint;
    uint64_t tag = 0;
    std::string bytes;
  };
  // An RMA request for window `window`: checked, then served by the remote
  // path, and answered once its bytes have moved (or, with a notification,
  // once that landed).
  void RmaArrive(const std::shared_ptr<Incoming>& message,
                 std::shared_ptr<WindowTable::Grant> window);
  // A read of a window here: checked, and the bytes sent back.
  void ReadArrive(const std::shared_ptr<Incoming>& message,
                  std::shared_ptr<WindowTable::Grant> window);
  // The bytes of a read made from here: landed where the read said.
  void ReadReplyArrive(const std::shared_ptr<Incoming>& message);
  // The reply `reply_id` to a read of a window here was answered.
  void ReadReplyAnswered(uint64_t reply_id, const absl::Status& status);
  // Runs `fn` on the shard with the remote path (this one without shards),
  // in order with this shard's sends there.
  void OnRemoteShard(absl::AnyInvocable<void(RingEngine&)> fn);
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
  // `id`'s traffic when it succeeded: one session lookup for both. A
  // `quiet` send that succeeded gets no completion (wire::kSubmissionQuiet).
  void CompleteMessage(uint64_t id, bool sent, uint64_t op_id, absl::Status status, uint64_t length,
                       uint64_t tag, bool quiet = false);
  bool Flush(Session& session);
  void Handle(uint64_t id, Session& session, const wire::Submission& submission);
  // Checks the endpoint and region of a send or receive and fills `into`
  // with them (in place: a Pending is large, and one moved per operation
  // showed in profiles). False when they fail the checks: the operation
  // completed with why.
  bool Prepare(uint64_t id, Session& session, const wire::Submission& submission, Pending& into);
  // Completes pending operation `op_id` of session `id` with `why`, if it is
  // still pending here or on the remote path; false if it is not.
  bool Abort(uint64_t id, uint64_t op_id, const absl::Status& why);
  // Deadlines: a timerfd in the loop set for the earliest one. AddDeadline
  // runs inside PollFromLoop only (it counts from the poll's clock).
  void AddDeadline(uint64_t id, uint64_t op_id, uint32_t timeout_ms);
  void OnDeadlineTimer();
  void ArmDeadlineTimer();

  ucx::Loop& loop_;
  SessionManager& sessions_manager_;
  const std::string node_name_;
  const uint64_t max_in_flight_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  // Declared before remote_, so destroyed after it: what waits here holds
  // messages from the remote path.
  Matcher matcher_;
  Router router_;
  Deadlines deadlines_;
  UniqueFd deadline_timer_;  // invalid if it could not be made
  absl::Time poll_clock_;    // read by the first deadline of a poll
  bool poll_clock_read_ = false;
  GpuCopier copier_;                         // GPU copies, polled with the rings
  std::unique_ptr<HostCopier> host_copier_;  // large host copies; null: all on this thread
  // Before remote_, which holds on to it until it goes.
  std::unique_ptr<ShardPeers> shard_peers_;  // a shard > 0's own links
  // With them: this shard's messages handed to shard 0 for another node,
  // (session, op id) -> node, until they complete, and their count per
  // node (the route to a node changes only when none waits there).
  absl::flat_hash_map<std::pair<uint64_t, uint64_t>, std::string> at_shard0_;
  absl::flat_hash_map<std::string, uint64_t> at_shard0_count_;
  std::unique_ptr<RemotePath> remote_;  // null without a peer plane
  // Endpoint -> session, looked up by view (no string built per message), as of:
  absl::flat_hash_map<std::string, uint64_t> owners_;
  // The last endpoint found there and its session (0: none; session ids
  // start at 1). The name is a copy: a rehash moves the map's keys.
  std::pair<std::string, uint64_t> last_owner_;
  uint64_t owners_generation_ = ~uint64_t{0};
  absl::Time last_work_ = absl::InfinitePast();
  bool just_worked_ = false;  // the last poll found work; last_work_ is stale
  uint32_t idle_polls_ = 0;
  uint64_t ops_completed_ = 0;
  OperationStats op_stats_;
  // Engine shards: all of them (null without), and this one's index.
  EngineShards* shards_ = nullptr;
  size_t index_ = 0;
  bool closing_ = false;
  // Messages from other nodes handed to another shard, by key, until they
  // land or go (hops.cc), and the shard each went to.
  struct Handed {
    std::shared_ptr<Incoming> message;
    size_t shard;
  };
  absl::flat_hash_map<uint64_t, Handed> handed_;
  // What runs here when a stand-in this shard matched has landed on the
  // shard that holds the message (LandElsewhere), by landing id (Tagged:
  // the landing shard's callback holds no more than the id, so it fits in
  // an AnyInvocable without a heap allocation).
  absl::flat_hash_map<uint64_t, absl::AnyInvocable<void(absl::Status)>> landings_;
  uint64_t next_landing_ = 0;
  // Remote window operations of this shard's sessions, by (session, op id).
  absl::flat_hash_map<std::pair<uint64_t, uint64_t>, RemoteWindow> window_ops_;
  absl::flat_hash_map<uint64_t, ReadTarget> read_targets_;  // by token
  uint64_t next_read_token_ = 1;                            // Tagged
  absl::flat_hash_map<uint64_t, ReadReply> read_replies_;   // by reply id (session 0's op ids)
  uint64_t next_reply_id_ = 1;
  uint64_t next_handed_ = 0;
  Mailbox<Hop> mail_;      // from other shards (any thread puts)
  std::vector<Hop> hops_;  // taken from it, kept for its capacity
  // For each shard, what this one handed it since the last SendHops.
  std::vector<std::vector<Hop>> outbox_;
  bool outbox_full_ = false;
};

}  // namespace axon::daemon
