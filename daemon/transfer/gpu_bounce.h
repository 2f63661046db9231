// GPU bytes through a bounce buffer of the daemon's own, copied by the GPU's
// copy engines. UCX never sees the clients' memory itself: UCX cannot use
// memory this daemon opened from another process's IPC handle (told it is
// CUDA memory, its sends crash and its rendezvous receives hang), so each
// side copies once between the client's tensor and a bounce buffer.
//
// The bounce buffer is device memory the daemon allocated (the direct path:
// UCX moves it with its CUDA transports, cuda_ipc between daemons on one
// host) when gpu_direct is set and the peer's UCX takes CUDA memory, and
// pinned host memory otherwise (the staging path; also for pieces small
// enough to go eagerly). The two differ only in that memory, so they are one
// kind.
//
// Per send: kCopying (into the bounce buffer; later sends to the node wait,
// held, so order holds) -> posted (in the link's window) -> answered. A
// cancel while copying is remembered and applied when the copy is done.
// Per arrival: pulled into a bounce buffer -> copied up -> landed.
#pragma once

#include <map>
#include <memory>
#include <utility>

#include "common/wire/data.h"
#include "daemon/cuda/buffer_pool.h"
#include "daemon/cuda/gpu_copier.h"
#include "daemon/transfer/transfer.h"
#include "daemon/ucx/worker.h"

namespace axon::daemon {

class GpuBounce final : public Transfer {
 public:
  // `keep_bytes`: idle bounce buffers kept per GPU, and pinned ones for all.
  GpuBounce(RemotePath& path, GpuCopier& copier, uint64_t keep_bytes);
  const char* name() const override { return "gpu bounce"; }
  // One piece (any number of parts): copied, then posted.
  void Send(NodeLink& link, Outgoing&& send) override;
  // A rendezvous message for GPU memory: pulled into a bounce buffer, then
  // copied up.
  void Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region, uint8_t* into,
            Then then) override;

  // Copies bytes [offset, offset + bytes) of `send` into a bounce buffer
  // and posts them when copied; `body` carries a chunk's fields (Chunking).
  void StagePiece(const Outgoing& send, uint64_t offset, uint64_t bytes, wire::DataBody body,
                  bool in_device);
  // A link hold for a send being copied (message ids, the holds of handle
  // probes, start at 1).
  static constexpr uint64_t kCopyingHold = 0;

  // A send of (session, op_id) being copied: withdrawn with `why` once its
  // copy is done, never posted. False when none is being copied.
  bool Withdraw(uint64_t session, uint64_t op_id, const absl::Status& why);
  void DropSession(uint64_t session, const absl::Status& why);

  uint64_t allocations() const;  // bounce buffers allocated (pooled) so far
  uint64_t idle_device_bytes() const;
  uint64_t idle_pinned_bytes() const { return pinned_->idle_bytes(); }
  uint64_t in_use_device_bytes() const;
  uint64_t in_use_pinned_bytes() const { return pinned_->in_use_bytes(); }

 private:
  struct Bounce {
    std::shared_ptr<BufferPool::Buffer> buffer;
    ucx::MemoryKind memory = ucx::MemoryKind::kHost;
  };
  // A bounce buffer for `bytes` bytes copied on `device`: device memory of
  // its own (`direct`), or pinned host memory (also when no device memory
  // is left).
  absl::StatusOr<Bounce> Take(int device, uint64_t bytes, bool direct);
  // The copy of a send's first piece is done: post it, or fail it.
  void Copied(Outgoing piece, Bounce bounce, uint64_t bytes, wire::DataBody body, bool first,
              absl::Status result);

  RemotePath& path_;
  GpuCopier& copier_;
  const uint64_t keep_bytes_;
  // Pinning is slow (~0.1 s per 256 MiB) and cudaFree stalls the GPU, so up
  // to keep_bytes of each stay idle between messages: pinned ones for all
  // GPUs, device ones (taken from the clients' GPU) per device. Reused
  // buffers also keep the peer's UCX from opening a new IPC mapping for each
  // message.
  std::shared_ptr<BufferPool> pinned_;
  std::map<int, std::shared_ptr<BufferPool>> device_pools_;
  // Sends whose first piece (the only one, or chunk 0) is being copied, by
  // (session, op id), with the reason once withdrawn.
  std::map<std::pair<uint64_t, uint64_t>, absl::Status> copying_;
};

}  // namespace axon::daemon
