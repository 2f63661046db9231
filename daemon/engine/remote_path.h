// RemotePath carries messages between endpoints on different nodes, over the
// peer plane's UCX connections. UCX thread only (every method ends in
// FromLoop), owned by the RingEngine, which matches what arrives against its
// posted receives.
//
// Sending: a kData frame whose payload is the region's bytes in place. Up to
// eager_limit bytes go eagerly; larger ones go rendezvous, and the receiving
// daemon pulls them straight into the posted buffer. The sending operation
// completes when the receiving daemon acknowledges it: the data is in the
// receiver's memory (kDataAcks, batched per peer and poll), or it says why
// not (kDataAck).
//
// Each connected node has a NodeLink (daemon/link), which owns the sequence
// numbers, the window (at most max_in_flight messages per node wait for their
// ack; later ones queue, in order), the ack batches, cancels and the stall
// check. Frames come out of a link in the order they were sent, so order
// holds per (source, destination) pair. This class decides how each
// message's bytes move.
//
// How the bytes move is a transfer kind's (daemon/transfer): SendKind and
// LandKind route each send and each arrival to one. Host memory goes in place
// (eager up to eager_limit, else rendezvous); GPU memory through a bounce
// buffer of the daemon's own (GpuBounce), large single-part GPU sends in
// chunks (Chunking), and between daemons on one host by CUDA IPC handle
// where the memory has one (GpuByHandle).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "common/last_entry.h"
#include "common/wire/data.h"
#include "common/wire/window.h"
#include "daemon/cuda/gpu_copier.h"
#include "daemon/engine/records.h"
#include "daemon/link/node_link.h"
#include "daemon/memory/cuda_region.h"
#include "daemon/memory/region.h"
#include "daemon/peer/peer_plane.h"
#include "daemon/transfer/transfer.h"
#include "daemon/ucx/worker.h"

namespace axon::daemon {

class Chunking;
class GpuBounce;
class GpuByHandle;
class HostEager;
class HostRendezvous;
class WindowRma;

// The bytes of a send, in order: [offset, ...) of `region` (what is left of
// `length` after the `more` parts), then each part of `more`.
ucx::Parts PartSpans(const Region& region, uint64_t offset, uint64_t length, const PartList& more);

// The device of the first part of a send in GPU memory ([offset, ...) of
// `region`, then `more`), or -1 when every part is host memory.
int GpuDevice(const Region& region, const PartList& more);

// Copies `from` (back to back) to `into`, an address in `to`, on GPU `device`:
// into the target as that GPU maps it, so a peer copy goes GPU to GPU where
// the two reach each other (else the driver stages it through host memory:
// 10x slower over NVLink). Host pages of `pin` are pinned first. Follow it
// with copier.Then.
absl::Status CopyOnGpu(GpuCopier& copier, int device, const ucx::Parts& from, Region& to,
                       uint8_t* into, const std::vector<std::shared_ptr<Region>>& pin);

class RemotePath {
 public:
  struct Hooks {
    // Completes a session's operation (no-op for a session gone).
    std::function<void(uint64_t session, uint64_t op_id, absl::Status status, uint64_t length,
                       uint64_t tag, bool quiet)>
        complete;
    // A message arrived for endpoint message->to; the engine matches or queues it,
    // or refuses it with Refuse().
    // It keeps `message` (a copy of the pointer) only if it needs it later.
    std::function<void(const std::shared_ptr<Incoming>& message)> arrived;
    // The sender withdrew a message: the engine drops it if still queued
    // (true) and the path answers CANCELLED.
    std::function<bool(const std::string& node, uint64_t message_id)> withdraw;
    // Node `node` went away: the engine drops everything queued from it.
    std::function<void(const std::string& node)> node_down;
  };
  struct Limits {
    uint64_t eager_limit = 16384;
    uint64_t max_in_flight = 1024;
    // GPU data to and from peers whose UCX takes CUDA memory goes in device
    // bounce buffers (else pinned host ones).
    bool gpu_direct = false;
    // And to a peer whose UCX does not, a GPU send fails (gpu.remote_path
    // is `direct`) rather than being staged.
    bool gpu_direct_only = false;
    // Idle bounce buffers kept per GPU, and pinned ones for all GPUs.
    uint64_t bounce_keep_bytes = uint64_t{1} << 30;
    // GPU sends to a daemon on this host go by CUDA IPC handle where they
    // can (gpu.same_host is handles; needs gpu_direct too), and peers'
    // handles are taken; without, peers' handles are refused.
    bool same_host_handles = true;
    // Messages in flight to a node and none answered for this long: the
    // node is dropped (its work fails UNAVAILABLE, and it reconnects),
    // whatever its keepalives say (peers.dead_after_ms).
    absl::Duration dead_after = absl::Seconds(3);
    // Serve other daemons' one-sided transfers into host windows here by
    // UCX RMA (peers.window_transfer rma); without, they come as frames.
    bool window_rma = true;
    // This path's first message id. A receiver knows a message by its node
    // and id, so the paths of one daemon (engine shards with links of their
    // own) number theirs apart: shard k from k << 48.
    uint64_t first_message_id = 1;
  };

  // `ipc`: the daemon's IPC mappings (CudaRegistry::ipc), which peers'
  // handles share; may be null (no handles taken).
  RemotePath(PeerPlane& peers, GpuCopier& copier, Limits limits, Hooks hooks,
             std::shared_ptr<IpcMappings> ipc = nullptr, const Clock& clock = Clock::Real());
  ~RemotePath();
  RemotePath(const RemotePath&) = delete;
  RemotePath& operator=(const RemotePath&) = delete;

  // Sends, or queues behind the window; completes through hooks.complete.
  void SendFromLoop(Outgoing&& send);
  // Lands `message` at `into` (message->length() bytes of region `region`,
  // kept mapped until then), acknowledges it to its sender, then runs `done`.
  void LandFromLoop(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                    uint8_t* into, std::function<void(absl::Status)> done);
  // The common case of LandFromLoop, done at once: a whole message whose
  // bytes came with it, into host memory (or none). Copies and acknowledges
  // it and returns true; false when it needs LandFromLoop (nothing done).
  bool LandNowFromLoop(const Incoming& message, const Region& region, uint8_t* into);
  // Serves a one-sided RMA request (a kRmaWrite or kRmaRead frame) whose
  // blocks the engine checked against the window starting at `window` (in
  // `window_region`): moves them, then runs `done`; answering the frame is
  // the engine's (AnswerFromLoop).
  void ServeRmaFromLoop(const Incoming& message, const wire::RmaRequest& request,
                        std::shared_ptr<Region> window_region, uint8_t* window,
                        std::function<void(absl::Status)> done);
  // Tells the sender its message was not delivered, and why.
  void RefuseFromLoop(const Incoming& message, const absl::Status& why);
  // Answers a message the engine took without landing it (a one-sided
  // read's request, once its reply landed at the sender).
  void AnswerFromLoop(const Incoming& message, const absl::Status& status) { Ack(message, status); }
  // A session closed: its queued sends go; its sends in flight are withdrawn
  // from the receiving daemons (their regions stay mapped until answered).
  void DropSessionFromLoop(uint64_t session);
  // Withdraws send `op_id` of `session` if it has not completed: one still
  // queued here completes with `why` at once; one in flight is withdrawn from
  // the receiving daemon and completes with `why` if that worked (or OK if
  // it was delivered first). False when there is no such send.
  bool AbortFromLoop(uint64_t session, uint64_t op_id, const absl::Status& why);

  // Sends the acks batched since the last call, one kDataAcks per peer. The
  // engine calls it at the end of every poll (and does not sleep while
  // acks_pending()).
  void FlushAcksFromLoop();
  bool acks_pending() const { return ack_batches_ != 0; }

  // A message this path or the engine is done with (the engine delivered
  // one it had parked): kept for the next arrival if nothing else holds it.
  void Recycle(std::shared_ptr<Incoming> in);

  uint64_t in_flight() const;
  uint64_t staged() const { return counters_.staged; }  // GPU messages staged through host memory
  uint64_t direct() const { return counters_.direct; }  // GPU messages through UCX in device memory
  uint64_t by_handle() const {
    return counters_.by_handle;
  }  // GPU messages sent or landed by handle
  // Their bytes, sent and received, by the same paths.
  uint64_t staged_bytes() const { return counters_.staged_bytes; }
  uint64_t direct_bytes() const { return counters_.direct_bytes; }
  uint64_t by_handle_bytes() const { return counters_.by_handle_bytes; }
  uint64_t handles_open() const;  // peers' handles mapped now
  bool serves_rma() const { return limits_.window_rma; }
  uint64_t rma_served() const;                // RMA requests served for other daemons
  uint64_t rma_served_bytes() const;          // and their bytes
  uint64_t bounce_allocations() const;        // bounce buffers allocated (pooled) so far
  uint64_t bounce_idle_device_bytes() const;  // allocated and idle now, all GPUs
  uint64_t bounce_idle_pinned_bytes() const;
  uint64_t bounce_in_use_device_bytes() const;  // held by transfers now, all GPUs
  uint64_t bounce_in_use_pinned_bytes() const;

 private:
  // The kinds move bytes through what follows (see daemon/transfer).
  friend class Chunking;
  friend class GpuBounce;
  friend class GpuByHandle;
  friend class HostEager;
  friend class HostRendezvous;
  friend class WindowRma;

  // The peer plane, as the node links see it.
  class PeerTransport final : public LinkTransport {
   public:
    explicit PeerTransport(PeerPlane& peers) : peers_(peers) {}
    void SendControl(const std::string& node, wire::MessageType type,
                     absl::Span<const uint8_t> body) override;
    void Drop(const std::string& node, const std::string& why) override;

   private:
    PeerPlane& peers_;
  };
  using Links = std::map<std::string, std::unique_ptr<NodeLink>>;

  void OnFrame(const std::string& node, const wire::Header& header, absl::Span<const uint8_t> body,
               ucx::AmMessage& message);
  // A frame from `node` that does not decode: drops the connection.
  void Malformed(const std::string& node, const wire::Header& header, const absl::Status& why);
  void OnData(const std::string& node, uint64_t sequence, const wire::DataView& body,
              ucx::AmMessage& message);
  // An ack for one message, or a batch of them: completes the sends, then
  // sends what waits behind them.
  void OnAck(const std::string& node, const wire::AckBody& ack);
  void OnAcks(const std::string& node, absl::Span<const uint64_t> message_ids);
  // Completes the send `ack` answers; false if it answers none on `n`.
  bool Answered(NodeLink& n, const wire::AckBody& ack);
  void OnCancel(const std::string& node, uint64_t message_id);
  void OnNodeDown(const std::string& node, const std::string& why);
  // A connection made on first use is up: what waited for it goes.
  void OnNodeUp(const std::string& node);
  // Drops every node that has had messages in flight and none answered for
  // limits_.dead_after (run on the peer plane's tick).
  void CheckProgressFromLoop();

  // Routing. The kind that moves `send` (null: none may; Transmit fails it).
  Transfer* SendKind(const NodeLink& n, const Outgoing& send);
  // The kind that lands `message` (not chunk 0 of a chunked one) in `region`.
  Transfer& LandKind(const Incoming& message, const Region& region);
  // Hands `send` to its kind.
  void Transmit(NodeLink& n, Outgoing&& send);
  // A frame in sequence order: to the engine, or to its chunked message.
  void Dispatch(const std::shared_ptr<Incoming>& in);

  // For the kinds.
  // Sends `send`'s bytes in place, as one message (the host kinds).
  void PostInPlace(NodeLink& n, Outgoing&& send);
  // Sends `parts` (the send's bytes, kept valid by `keep`, in `memory`) as
  // one message; `chunk` carries the fields of a chunk or a handle.
  void Post(NodeLink& n, Outgoing&& send, ucx::Parts&& parts, ucx::Keepalives&& keep,
            const wire::DataBody& chunk = {}, ucx::MemoryKind memory = ucx::MemoryKind::kHost);
  // Completes `send`'s operation with `st`, once per chunked send.
  void Finish(const Outgoing& send, absl::Status st);
  // Completes the client's operation of `send` with `st`.
  void Complete(const Outgoing& send, const absl::Status& st);
  // Answers `message` on the link it came on (NodeLink::Ack); nothing when
  // that connection is gone (its sender failed the message already).
  void Ack(const Incoming& message, const absl::Status& status);
  // Acknowledges a landed message and tells the engine.
  void Landed(const Incoming& message, const absl::Status& st,
              const std::function<void(absl::Status)>& done);
  // Sends what waits for node `node`, while the window and holds allow.
  void Drain(const std::string& node);
  void Drain(NodeLink& n);
  // The link to node `name`, a new one (a new generation) if there is none.
  NodeLink& LinkTo(const std::string& name);
  // The link to `name` if there is one (the last one found first), else null.
  NodeLink* FindLink(const std::string& name);
  // The link `send` was staged on, if that connection is still there.
  NodeLink* Live(const Outgoing& send);
  // Whether GPU data to or from `node` goes in device memory.
  bool DirectWith(const std::string& node) const;
  bool SharesGpusWith(const std::string& node) { return peers_.PeerSharesGpusFromLoop(node); }
  bool NodeUp(const std::string& node) { return peers_.CheckUpFromLoop(node).ok(); }
  uint64_t eager_limit() const { return limits_.eager_limit; }
  // `count` message ids in a row; the first.
  uint64_t TakeMessageIds(uint64_t count) {
    const uint64_t first = next_message_id_;
    next_message_id_ += count;
    return first;
  }
  uint64_t next_message_id() const { return next_message_id_; }
  TransferCounters& counters() { return counters_; }
  GpuCopier& copier() { return copier_; }
  LinkTransport& transport() { return transport_; }
  const std::shared_ptr<bool>& alive() const { return alive_; }
  // An Incoming to fill: one the engine let go of (Recycle), or a new one.
  // Arrivals allocate nothing in the common case (a received message landed
  // at once); every field is set by OnData.
  std::shared_ptr<Incoming> NewIncoming();

  PeerPlane& peers_;
  GpuCopier& copier_;
  uint64_t next_generation_ = 1;
  TransferCounters counters_;
  const Limits limits_;
  Hooks hooks_;
  PeerTransport transport_;
  const Clock& clock_;
  // One per connected node; goes with its connection (OnNodeDown).
  Links links_;
  // For LinkTo and FindLink: most messages go to or come from the node of
  // the message before.
  LastEntry<Links> last_link_;
  uint64_t next_message_id_ = 1;
  // Links with deliveries not yet acknowledged (NodeLink keeps it).
  size_t ack_batches_ = 0;
  std::vector<uint64_t> acked_;  // a received batch's ids, decoded (storage kept)
  std::vector<std::shared_ptr<Incoming>> spare_incoming_;  // for NewIncoming
  // The kinds (daemon/transfer).
  std::unique_ptr<HostEager> eager_;
  std::unique_ptr<HostRendezvous> rendezvous_;
  std::unique_ptr<GpuBounce> bounce_;
  std::unique_ptr<Chunking> chunking_;
  std::unique_ptr<GpuByHandle> handles_;
  std::unique_ptr<WindowRma> rma_;
  // False once destroyed: UCX completions that outlive it check it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace axon::daemon
