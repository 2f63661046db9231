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
// GPU memory goes through a bounce buffer of the daemon's own, copied by the
// GPU's copy engines: a GPU send is first copied into one (later sends to
// that node wait behind it, to keep the order), and a rendezvous message for
// a GPU buffer is pulled into one and copied up. A large GPU send goes in
// chunks of kChunk bytes, each sent as soon as it is copied and copied up as
// soon as it lands, so the copies overlap the wire (staging.cc).
//
// The bounce buffer is device memory the daemon allocated (the direct path:
// UCX moves it with its CUDA transports, cuda_ipc between daemons on one
// host) when gpu_direct is set and the peer's UCX takes CUDA memory, and
// pinned host memory otherwise (the staging path; also for pieces small
// enough to go eagerly). UCX never sees the clients' memory itself: UCX 1.22
// cannot use memory this daemon opened from another process's IPC handle
// (told it is CUDA memory, its sends crash and its rendezvous receives hang;
// seen on an H100), so the direct path costs one device copy on each side.
//
// Between daemons on one host (the data endpoint has a cuda_ipc lane), a GPU
// send of one part in legacy IPC memory goes by handle instead
// (gpu.same_host: handles, by_handle.cc): the frame carries the client's CUDA
// IPC handle, and the receiving daemon opens it and copies straight from the
// sender's tensor into the posted buffer, one copy in all.
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
#include "daemon/cuda/buffer_pool.h"
#include "daemon/cuda/gpu_copier.h"
#include "daemon/engine/records.h"
#include "daemon/link/node_link.h"
#include "daemon/memory/cuda_region.h"
#include "daemon/memory/region.h"
#include "daemon/peer/peer_manager.h"
#include "daemon/ucx/worker.h"

namespace axon::daemon {

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
                       uint64_t tag)>
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
  };

  // `ipc`: the daemon's IPC mappings (CudaRegistry::ipc), which peers'
  // handles share; may be null (no handles taken).
  RemotePath(PeerManager& peers, GpuCopier& copier, Limits limits, Hooks hooks,
             std::shared_ptr<IpcMappings> ipc = nullptr, const Clock& clock = Clock::Real());
  ~RemotePath();
  RemotePath(const RemotePath&) = delete;
  RemotePath& operator=(const RemotePath&) = delete;

  // Sends, or queues behind the window; completes through hooks.complete.
  void SendFromLoop(Outgoing send);
  // Lands `message` at `into` (message->length() bytes of region `region`,
  // kept mapped until then), acknowledges it to its sender, then runs `done`.
  void LandFromLoop(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                    uint8_t* into, std::function<void(absl::Status)> done);
  // The common case of LandFromLoop, done at once: a whole message whose
  // bytes came with it, into host memory (or none). Copies and acknowledges
  // it and returns true; false when it needs LandFromLoop (nothing done).
  bool LandNowFromLoop(const Incoming& message, const Region& region, uint8_t* into);
  // Tells the sender its message was not delivered, and why.
  void RefuseFromLoop(const Incoming& message, const absl::Status& why);
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
  uint64_t staged() const { return staged_; }        // GPU messages staged through host memory
  uint64_t direct() const { return direct_; }        // GPU messages through UCX in device memory
  uint64_t by_handle() const { return by_handle_; }  // GPU messages sent or landed by handle
  // Their bytes, sent and received, by the same paths.
  uint64_t staged_bytes() const { return staged_bytes_; }
  uint64_t direct_bytes() const { return direct_bytes_; }
  uint64_t by_handle_bytes() const { return by_handle_bytes_; }
  uint64_t handles_open() const { return opened_.size(); }  // peers' handles mapped now
  uint64_t bounce_allocations() const;        // bounce buffers allocated (pooled) so far
  uint64_t bounce_idle_device_bytes() const;  // allocated and idle now, all GPUs
  uint64_t bounce_idle_pinned_bytes() const { return pinned_->idle_bytes(); }
  uint64_t bounce_in_use_device_bytes() const;  // held by transfers now, all GPUs
  uint64_t bounce_in_use_pinned_bytes() const { return pinned_->in_use_bytes(); }

  // Each chunk costs a fixed ~25-30 us beyond its bytes: 32 MiB chunks
  // against 8 MiB doubled the direct path at 64-256 MiB and halved its 64 MiB
  // round trip (H100; staging is unchanged either way).
  static constexpr uint64_t kChunk = uint64_t{32} << 20;
  // Chunks of one send in bounce buffers at once (256 MiB): the next is
  // staged as one is answered, so a send of any size holds at most this much
  // on each side. Less costs bandwidth: 64 MiB in flight gave 79 GB/s on the
  // direct path at 1 GiB where unbounded gave 255 (H100, two daemons).
  static constexpr uint64_t kChunksInFlight = 8;

 private:
  // The peer plane, as the node links see it.
  class PeerTransport final : public LinkTransport {
   public:
    explicit PeerTransport(PeerManager& peers) : peers_(peers) {}
    void SendControl(const std::string& node, wire::MessageType type,
                     absl::Span<const uint8_t> body) override;
    void Drop(const std::string& node, const std::string& why) override;

   private:
    PeerManager& peers_;
  };
  // A link hold for a GPU send being copied (message ids, the holds of
  // handle probes, start at 1).
  static constexpr uint64_t kStagingHold = 0;
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
  void Transmit(NodeLink& n, Outgoing&& send);
  // By handle (by_handle.cc). Sends `send` by handle if it can go so
  // (true: taken); else leaves it alone.
  bool SendByHandle(NodeLink& n, Outgoing& send);
  // Opens an arriving message's handle; false when it could not (answered).
  bool OpenHandle(Incoming& in);
  // Tells the sender of `in` its handle opened (OK) or why not.
  void Answer(const Incoming& in, const absl::Status& opened);
  // Copies a message by handle from the sender's memory to `into`.
  void LandByHandle(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                    uint8_t* into, std::function<void(absl::Status)> then);
  // Opened (a probe's answer: later sends may go) or refused (it goes again
  // through bounce buffers).
  void OnHandleAnswer(const std::string& node, const wire::AckBody& answer);
  void OnHandleClosed(const std::string& node, const std::string& handle);
  // Tells the nodes holding handles whose memory this daemon let go.
  void SweepHandlesFromLoop();
  // Drops every node that has had messages in flight and none answered for
  // limits_.dead_after (run on the peer plane's tick).
  void CheckProgressFromLoop();
  // Tells the nodes holding `handle` that this daemon let go of its memory.
  struct Shared;
  void CloseHandle(const std::string& handle, Shared& shared);
  absl::StatusOr<std::string> BusId(int device);
  // The link to node `name`, a new one (a new generation) if there is none.
  NodeLink& LinkTo(const std::string& name);
  // The link `send` was staged on, if that connection is still there.
  NodeLink* Live(const Outgoing& send);
  // Whether GPU data to or from `node` goes in device memory.
  bool DirectWith(const std::string& node) const;
  // A bounce buffer for `bytes` bytes copied on `device`: device memory of
  // its own (`direct`), or pinned host memory (also when no device memory
  // is left).
  struct Bounce {
    std::shared_ptr<BufferPool::Buffer> buffer;
    ucx::MemoryKind memory = ucx::MemoryKind::kHost;
  };
  absl::StatusOr<Bounce> TakeBounce(int device, uint64_t bytes, bool direct);
  // Copies a GPU send into bounce buffers, and sends each as its copy
  // finishes: one buffer, or kChunk-sized chunks of a large single-part send,
  // kChunksInFlight at a time.
  void Stage(NodeLink& n, Outgoing send);
  // Copies bytes [offset, offset + bytes) of `send` into a bounce buffer
  // and posts them when copied; `body` carries a chunk's fields.
  void StagePiece(const Outgoing& send, uint64_t offset, uint64_t bytes, wire::DataBody body,
                  bool in_device);
  // Stages chunk `send.chunks->staged` of a chunked send: copied, or sent
  // empty once the send has failed (the receiver answers it either way).
  void StageNextChunk(const Outgoing& send);
  // Sends `parts` (the send's bytes, kept valid by `keep`, in `memory`) as
  // one message; `chunk` carries the fields of a chunk or a handle.
  void Post(NodeLink& n, Outgoing&& send, ucx::Parts parts, ucx::Keepalives keep,
            const wire::DataBody& chunk = {}, ucx::MemoryKind memory = ucx::MemoryKind::kHost);
  // Completes `send`'s operation with `st`, once per chunked send.
  void Finish(const Outgoing& send, absl::Status st);
  // Sends what waits for node `node`, while the window and staging allow.
  void Drain(const std::string& node);
  void Drain(NodeLink& n);
  // The link to `name` if there is one (the last one found first), else null.
  NodeLink* FindLink(const std::string& name);
  // Puts `message`'s bytes at `into` (of `region`), then runs `then` (no ack).
  void Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region, uint8_t* into,
            std::function<void(absl::Status)> then);
  // Pulls a rendezvous message into a bounce buffer, then copies it to a GPU.
  void LandStaged(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region, uint8_t* into,
                  std::function<void(absl::Status)> then);
  // A chunked message arriving: its chunks, where they go, how far it got.
  struct Chunked {
    std::string node;
    uint64_t first_id = 0;
    uint64_t total = 0;
    std::vector<std::shared_ptr<Incoming>> early;  // chunks that came before it was matched
    bool matched = false, finished = false;
    absl::Status status;  // why it was refused, or its first failure
    std::shared_ptr<Region> region;
    uint8_t* into = nullptr;
    std::function<void(absl::Status)> done;
    uint64_t arrived = 0, landed = 0;  // bytes
  };
  // LandFromLoop for chunk 0 of a chunked message: it and every other chunk.
  void LandChunkedFromLoop(std::shared_ptr<Incoming> first, std::shared_ptr<Region> region,
                           uint8_t* into, std::function<void(absl::Status)> done);
  // A frame in sequence order: to the engine, or to its chunked message.
  void Dispatch(const std::shared_ptr<Incoming>& in);
  // An Incoming to fill: one the engine let go of (Recycle), or a new one.
  // Arrivals allocate nothing in the common case (a received message landed
  // at once); every field is set by OnData.
  std::shared_ptr<Incoming> NewIncoming();
  void LandChunk(const std::shared_ptr<Chunked>& c, std::shared_ptr<Incoming> chunk);
  // Answers a chunk that will not land; forgets the message once all came.
  void RefuseChunk(const std::shared_ptr<Chunked>& c, const Incoming& chunk);
  void ChunkLanded(const std::shared_ptr<Chunked>& c, uint64_t bytes, const absl::Status& st);
  // Forgets `c` once every chunk came and it finished.
  void MaybeForget(const std::shared_ptr<Chunked>& c);
  // Refuses the whole chunked message: chunk 0 (`first`) and those that came.
  void RefuseChunked(const std::shared_ptr<Chunked>& c, const Incoming& first,
                     const absl::Status& why);
  // Acknowledges a landed message and tells the engine.
  void Landed(const Incoming& message, const absl::Status& st,
              const std::function<void(absl::Status)>& done);
  // Answers `message` on the link it came on (NodeLink::Ack); nothing when
  // that connection is gone (its sender failed the message already).
  void Ack(const Incoming& message, const absl::Status& status);

  PeerManager& peers_;
  GpuCopier& copier_;
  // Bounce buffers: pinning is slow (~0.1 s per 256 MiB) and cudaFree
  // stalls the GPU, so up to Limits::bounce_keep_bytes of each stay idle
  // between messages: pinned ones for all GPUs, device ones (taken from the
  // clients' GPU) per device. Reused buffers also keep the peer's UCX from
  // opening a new IPC mapping for each message.
  std::shared_ptr<BufferPool> pinned_;
  std::map<int, std::shared_ptr<BufferPool>> device_pools_;  // each keeps limits_'s idle bytes
  uint64_t next_generation_ = 1;
  uint64_t staged_ = 0, direct_ = 0, by_handle_ = 0;
  uint64_t staged_bytes_ = 0, direct_bytes_ = 0, by_handle_bytes_ = 0;
  // By handle. Sent: the handles each node holds, until this daemon's
  // mapping of their memory closes. Received: peers' handles opened here,
  // by (node, handle), until the node says they closed or goes down.
  std::shared_ptr<IpcMappings> ipc_;
  struct Shared {
    std::weak_ptr<const void> mapping;
    std::set<std::string> nodes;
  };
  std::map<std::string, Shared> shared_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const cuda::DeviceMemory>> opened_;
  std::map<int, std::string> bus_ids_;
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
  // GPU sends whose first piece (the only one, or chunk 0) is being copied
  // into its bounce buffer, by (session, op id): withdrawn (the reason set)
  // before that piece is posted.
  std::map<std::pair<uint64_t, uint64_t>, absl::Status> copying_;
  // Chunked messages arriving, by (node, chunk 0's message id).
  std::map<std::pair<std::string, uint64_t>, std::shared_ptr<Chunked>> chunked_;
  // False once destroyed: UCX completions that outlive it check it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace axon::daemon
