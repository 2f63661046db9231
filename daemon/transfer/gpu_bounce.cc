#include "daemon/transfer/gpu_bounce.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/cuda/driver.h"
#include "common/log.h"
#include "daemon/engine/remote_path.h"

namespace axon::daemon {

GpuBounce::GpuBounce(RemotePath& path, GpuCopier& copier, uint64_t keep_bytes)
    : path_(path),
      copier_(copier),
      keep_bytes_(keep_bytes),
      pinned_(BufferPool::Pinned(keep_bytes)) {}

void GpuBounce::Send(NodeLink& link, Outgoing&& send) {
  const bool direct = path_.DirectWith(send.node);
  send.generation = link.generation();
  // Later sends to the node wait until this one is posted: order holds.
  link.Hold(kCopyingHold);
  const uint64_t bytes = send.length;
  StagePiece(send, 0, bytes, {}, direct && bytes > path_.eager_limit());  // else it goes eagerly
}

absl::StatusOr<GpuBounce::Bounce> GpuBounce::Take(int device, uint64_t bytes, bool direct) {
  // Pinned in the copying device's context (see BufferPool::Pinned).
  if (auto st = cuda::UseDevice(device); !st.ok()) return st;
  if (direct) {
    auto& pool = device_pools_[device];
    if (!pool) pool = BufferPool::Device(keep_bytes_);
    auto buffer = pool->Take(bytes);
    if (buffer.ok()) return Bounce{*std::move(buffer), ucx::MemoryKind::kCuda};
    // The clients' GPU is full (a caching allocator holds it): stage.
    spdlog::debug("no GPU memory for a {}-byte bounce buffer ({}); staging through host memory",
                  bytes, buffer.status().message());
  }
  auto buffer = pinned_->Take(bytes);
  if (!buffer.ok()) return buffer.status();
  return Bounce{*std::move(buffer), ucx::MemoryKind::kHost};
}

void GpuBounce::StagePiece(const Outgoing& send, uint64_t offset, uint64_t bytes,
                           wire::DataBody body, bool in_device) {
  const int device = GpuDevice(*send.region, send.more);
  auto bounce = Take(device, bytes, in_device);
  absl::Status staged = bounce.status();
  // Counted by the memory it really went in (no device memory left: host).
  const bool first = offset == 0;
  const bool in_gpu = bounce.ok() && bounce->memory == ucx::MemoryKind::kCuda;
  TransferCounters& counters = path_.counters();
  if (first) ++(in_gpu ? counters.direct : counters.staged);
  if (bounce.ok()) (in_gpu ? counters.direct_bytes : counters.staged_bytes) += bytes;
  // Bytes [offset, offset + bytes) of the parts, back to back.
  uint64_t skip = offset, at = 0;
  for (absl::Span<const uint8_t> s : PartSpans(*send.region, send.offset, send.length, send.more)) {
    if (!staged.ok() || at == bytes) break;
    if (skip >= s.size()) {
      skip -= s.size();
      continue;
    }
    const uint64_t take = std::min<uint64_t>(s.size() - skip, bytes - at);
    staged = copier_.Copy(device, bounce->buffer->data + at, s.data() + skip, take);
    at += take;
    skip = 0;
  }
  // Until its first piece is posted a send is neither waiting nor in
  // flight: a cancel finds it here.
  if (first) copying_[{send.session, send.op_id}] = absl::OkStatus();
  copier_.Then(device, [this, alive = path_.alive(), staged, piece = send,
                        bounce = bounce.ok() ? *std::move(bounce) : Bounce{},
                        body = std::move(body), bytes, first](absl::Status copied) mutable {
    if (!*alive) return;
    Copied(std::move(piece), std::move(bounce), bytes, std::move(body), first,
           staged.ok() ? copied : staged);
  });
}

void GpuBounce::Copied(Outgoing piece, Bounce bounce, uint64_t bytes, wire::DataBody body,
                       bool first, absl::Status result) {
  absl::Status withdrawn;
  if (first) {
    auto it = copying_.find({piece.session, piece.op_id});
    if (it != copying_.end()) {
      withdrawn = std::move(it->second);
      copying_.erase(it);
    }
  }
  NodeLink* n = path_.Live(piece);
  if (n == nullptr) {  // the node went down meanwhile
    path_.Finish(piece, absl::UnavailableError(absl::StrCat("node ", piece.node, " went away")));
    return;
  }
  // The first piece of a send (the only one, or chunk 0) releases the order.
  if (first) n->Release(kCopyingHold);
  const std::string node = piece.node;  // `piece` moves on below
  const uint64_t session = piece.session, op_id = piece.op_id;
  const std::shared_ptr<Outgoing::Chunks> chunks = piece.chunks;
  if (!withdrawn.ok() && !chunks) {  // cancelled while it was being copied: never sent
    path_.Finish(piece, withdrawn);
  } else if (result.ok()) {
    ucx::Parts parts{{bounce.buffer->data, bytes}};
    path_.Post(*n, std::move(piece), std::move(parts), {std::move(bounce.buffer)}, body,
               bounce.memory);
  } else if (chunks) {
    // Sent empty: the receiver fails the message; its answer completes this one.
    if (chunks->status.ok()) chunks->status = result;
    path_.Post(*n, std::move(piece), {}, {}, body);
  } else {
    path_.Finish(piece, result);
  }
  if (!withdrawn.ok() && chunks) {
    // A chunked send cancelled while its first chunk was copied: that
    // chunk is in flight now and is withdrawn like any; the chunks not yet
    // copied travel empty, and the send completes with `withdrawn`.
    if (chunks->status.ok()) chunks->status = withdrawn;
    (void)path_.AbortFromLoop(session, op_id, withdrawn);
  }
  if (first) path_.Drain(node);
}

bool GpuBounce::Withdraw(uint64_t session, uint64_t op_id, const absl::Status& why) {
  auto it = copying_.find({session, op_id});
  if (it == copying_.end()) return false;
  if (it->second.ok()) it->second = why;  // completes once its copy is done
  return true;
}

void GpuBounce::DropSession(uint64_t session, const absl::Status& why) {
  for (auto& [key, withdrawn] : copying_) {  // being copied: never sent
    if (key.first == session && withdrawn.ok()) withdrawn = why;
  }
}

void GpuBounce::Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                     uint8_t* into, Then then) {
  const uint64_t length = message->bytes;
  auto bounce = Take(region->device(), length, path_.DirectWith(message->node));
  if (!bounce.ok()) {
    // Leave the data on the sender: the answer releases it there.
    message->pending.reset();
    then(bounce.status());
    return;
  }
  const bool in_gpu = bounce->memory == ucx::MemoryKind::kCuda;
  TransferCounters& counters = path_.counters();
  if (!message->chunked || message->offset == 0) ++(in_gpu ? counters.direct : counters.staged);
  (in_gpu ? counters.direct_bytes : counters.staged_bytes) += length;
  uint8_t* data = bounce->buffer->data;
  const ucx::MemoryKind memory = bounce->memory;
  ucx::Worker::ReceiveData(
      std::move(message->pending), data,
      [this, alive = path_.alive(), message, region = std::move(region), into, length,
       buffer = std::move(bounce->buffer), then = std::move(then)](const absl::Status& st) {
        if (!*alive) return;
        if (!st.ok()) {
          then(absl::UnavailableError(
              absl::StrCat("pulling the message from ", message->node, " failed: ", st.message())));
          return;
        }
        if (auto copied = copier_.Copy(region->device(), into, buffer->data, length);
            !copied.ok()) {
          then(copied);
          return;
        }
        copier_.Then(region->device(), [alive, region, buffer, then](absl::Status up) {
          if (*alive) then(up);
        });
      },
      memory);
}

uint64_t GpuBounce::allocations() const {
  uint64_t n = pinned_->allocations();
  for (const auto& [device, pool] : device_pools_) n += pool->allocations();
  return n;
}

uint64_t GpuBounce::idle_device_bytes() const {
  uint64_t n = 0;
  for (const auto& [device, pool] : device_pools_) n += pool->idle_bytes();
  return n;
}

uint64_t GpuBounce::in_use_device_bytes() const {
  uint64_t n = 0;
  for (const auto& [device, pool] : device_pools_) n += pool->in_use_bytes();
  return n;
}

}  // namespace axon::daemon
