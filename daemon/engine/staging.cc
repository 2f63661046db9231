// RemotePath, part: GPU sends through bounce buffers (device memory of the
// daemon's own, or pinned host memory), large ones in chunks. The sender
// copies each piece into a bounce buffer and sends it as soon as its copy is
// done, with at most kChunksInFlight chunks of a send unanswered; the
// receiver lands each chunk where its message landed, copying it up as soon
// as it arrives. A chunk that could not be staged, or that follows a
// failure, travels empty and fails the message.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/engine/remote_path.h"

namespace axon::daemon {

void RemotePath::Stage(NodeLink& n, Outgoing send) {
  const bool direct = DirectWith(send.node);
  const bool in_device = direct && send.length > limits_.eager_limit;  // else it goes eagerly
  send.generation = n.generation();
  // Later sends to the node wait until this one's first piece is posted:
  // order holds (later chunks may follow later messages; the receiver sorts
  // them by message).
  n.Hold(kStagingHold);
  // One piece (any number of parts), or chunks of one large part.
  if (!send.more.empty() || send.length <= kChunk) {
    StagePiece(send, 0, send.length, {}, in_device);
    return;
  }
  send.chunks = std::make_shared<Outgoing::Chunks>();
  Outgoing::Chunks& c = *send.chunks;
  c.count = (send.length + kChunk - 1) / kChunk;
  c.unanswered = c.count;
  c.first_id = next_message_id_;
  next_message_id_ += c.count;  // chunk i is first_id + i
  c.direct = direct;
  while (c.staged < std::min(c.count, kChunksInFlight)) StageNextChunk(send);
}

NodeLink* RemotePath::Live(const Outgoing& send) {
  NodeLink* link = FindLink(send.node);
  return link != nullptr && link->generation() == send.generation ? link : nullptr;
}

void RemotePath::StageNextChunk(const Outgoing& send) {
  Outgoing::Chunks& c = *send.chunks;
  const uint64_t i = c.staged++;
  const uint64_t offset = i * kChunk;
  const uint64_t bytes = std::min(kChunk, send.length - offset);
  wire::DataBody body{
      .message_id = c.first_id + i, .total = send.length, .offset = offset, .first_id = c.first_id};
  NodeLink* n = Live(send);
  if (c.status.ok() || n == nullptr) {
    // Small pieces go eagerly, which UCX does from host memory.
    StagePiece(send, offset, bytes, std::move(body), c.direct && bytes > limits_.eager_limit);
    return;
  }
  // Failed already (refused, withdrawn, not stageable): no copy. Never
  // chunk 0, which went first.
  Post(*n, Outgoing(send), {}, {}, std::move(body));
}

void RemotePath::StagePiece(const Outgoing& send, uint64_t offset, uint64_t bytes,
                            wire::DataBody body, bool in_device) {
  const int device = GpuDevice(*send.region, send.more);
  auto bounce = TakeBounce(device, bytes, in_device);
  absl::Status staged = bounce.status();
  // Counted by the memory it really went in (no device memory left: host).
  const bool first = offset == 0;
  const bool in_gpu = bounce.ok() && bounce->memory == ucx::MemoryKind::kCuda;
  if (first) ++(in_gpu ? direct_ : staged_);
  if (bounce.ok()) (in_gpu ? direct_bytes_ : staged_bytes_) += bytes;
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
  // The first piece of a send (the only one, or chunk 0) releases the order.
  copier_.Then(device, [this, alive = alive_, staged, piece = send,
                        bounce = bounce.ok() ? *std::move(bounce) : Bounce{},
                        body = std::move(body), bytes, first](absl::Status copied) mutable {
    if (!*alive) return;
    absl::Status withdrawn;
    if (first) {
      auto it = copying_.find({piece.session, piece.op_id});
      if (it != copying_.end()) {
        withdrawn = std::move(it->second);
        copying_.erase(it);
      }
    }
    NodeLink* n = Live(piece);
    if (n == nullptr) {  // the node went down meanwhile
      Finish(piece, absl::UnavailableError(absl::StrCat("node ", piece.node, " went away")));
      return;
    }
    if (first) n->Release(kStagingHold);
    const std::string node = piece.node;  // `piece` moves on below
    const uint64_t session = piece.session, op_id = piece.op_id;
    const std::shared_ptr<Outgoing::Chunks> chunks = piece.chunks;
    const absl::Status result = staged.ok() ? copied : staged;
    if (!withdrawn.ok() && !chunks) {  // cancelled while it was being copied: never sent
      Finish(piece, withdrawn);
    } else if (result.ok()) {
      ucx::Parts parts{{bounce.buffer->data, bytes}};
      Post(*n, std::move(piece), std::move(parts), {std::move(bounce.buffer)}, std::move(body),
           bounce.memory);
    } else if (chunks) {
      // Sent empty: the receiver fails the message; its answer completes this one.
      if (chunks->status.ok()) chunks->status = result;
      Post(*n, std::move(piece), {}, {}, std::move(body));
    } else {
      Finish(piece, result);
    }
    if (!withdrawn.ok() && chunks) {
      // A chunked send cancelled while its first chunk was copied: that
      // chunk is in flight now and is withdrawn like any; the chunks not yet
      // copied travel empty, and the send completes with `withdrawn`.
      if (chunks->status.ok()) chunks->status = withdrawn;
      (void)AbortFromLoop(session, op_id, withdrawn);
    }
    if (first) Drain(node);
  });
}

void RemotePath::Finish(const Outgoing& send, absl::Status st) {
  if (!send.chunks) {
    hooks_.complete(send.session, send.op_id, st, st.ok() ? send.length : 0, send.tag);
    return;
  }
  if (!st.ok() && send.chunks->status.ok()) send.chunks->status = std::move(st);
  // An answer makes room for the next chunk. To a node gone or down, the
  // chunks not yet staged never go, and nobody will answer them: all at
  // once (not one by one, each failing to post: a deep recursion).
  Outgoing::Chunks& c = *send.chunks;
  if (c.staged < c.count && (Live(send) == nullptr || !peers_.CheckUpFromLoop(send.node).ok())) {
    c.unanswered -= c.count - c.staged;
    c.staged = c.count;
  }
  if (c.staged < c.count) StageNextChunk(send);
  if (--c.unanswered > 0) return;
  const absl::Status result = c.status;
  hooks_.complete(send.session, send.op_id, result, result.ok() ? send.length : 0, send.tag);
}

void RemotePath::Dispatch(const std::shared_ptr<Incoming>& in) {
  // By handle: opened before the engine sees it, or answered and dropped.
  if (!in->handle.empty() && !OpenHandle(*in)) return;
  if (!in->chunked) {
    hooks_.arrived(in);
    return;
  }
  const std::pair<std::string, uint64_t> key{in->node, in->first_id};
  if (in->offset == 0) {  // chunk 0 stands for the message in the engine
    auto c = std::make_shared<Chunked>();
    c->node = in->node;
    c->first_id = in->first_id;
    c->total = in->total;
    c->arrived = std::min(kChunk, c->total);
    chunked_[key] = c;
    hooks_.arrived(in);
    return;
  }
  auto it = chunked_.find(key);
  if (it == chunked_.end()) {
    Ack(*in, absl::InvalidArgumentError("a chunk of a message that is not arriving"));
    return;
  }
  std::shared_ptr<Chunked> c = it->second;
  c->arrived += std::min(kChunk, c->total - in->offset);
  if (c->matched) {
    LandChunk(c, in);
  } else if (c->finished) {  // refused or withdrawn
    RefuseChunk(c, *in);
  } else {
    c->early.push_back(in);
  }
}

void RemotePath::LandChunkedFromLoop(std::shared_ptr<Incoming> first,
                                     std::shared_ptr<Region> region, uint8_t* into,
                                     std::function<void(absl::Status)> done) {
  auto it = chunked_.find({first->node, first->first_id});
  if (it == chunked_.end()) {  // its node went away meanwhile
    Landed(*first, absl::UnavailableError(absl::StrCat("node ", first->node, " went away")), done);
    return;
  }
  std::shared_ptr<Chunked> c = it->second;
  c->matched = true;
  c->region = std::move(region);
  c->into = into;
  c->done = std::move(done);
  LandChunk(c, std::move(first));
  for (auto& chunk : std::exchange(c->early, {})) LandChunk(c, std::move(chunk));
}

void RemotePath::LandChunk(const std::shared_ptr<Chunked>& c, std::shared_ptr<Incoming> chunk) {
  const uint64_t expected = std::min(kChunk, c->total - chunk->offset);
  if (chunk->bytes != expected) {  // sent empty: the sender could not stage it
    const absl::Status lost = absl::DataLossError(
        absl::StrCat("the sender could not stage bytes [", chunk->offset, ", +", expected, ")"));
    Ack(*chunk, lost);
    ChunkLanded(c, expected, lost);
    return;
  }
  Land(chunk, c->region, c->into + chunk->offset, [this, c, chunk, expected](absl::Status st) {
    Ack(*chunk, st);
    ChunkLanded(c, expected, st);
  });
}

void RemotePath::ChunkLanded(const std::shared_ptr<Chunked>& c, uint64_t bytes,
                             const absl::Status& st) {
  if (!st.ok() && c->status.ok()) c->status = st;
  c->landed += bytes;
  if (c->landed == c->total && !c->finished) {
    c->finished = true;
    c->done(c->status);
  }
  MaybeForget(c);
}

void RemotePath::RefuseChunk(const std::shared_ptr<Chunked>& c, const Incoming& chunk) {
  Ack(chunk, c->status);
  MaybeForget(c);
}

void RemotePath::RefuseChunked(const std::shared_ptr<Chunked>& c, const Incoming& first,
                               const absl::Status& why) {
  c->status = why;
  c->finished = true;
  Ack(first, why);
  for (const auto& chunk : std::exchange(c->early, {})) Ack(*chunk, why);
  MaybeForget(c);
}

void RemotePath::MaybeForget(const std::shared_ptr<Chunked>& c) {
  if (c->finished && c->arrived == c->total) {
    auto it = chunked_.find({c->node, c->first_id});
    if (it != chunked_.end() && it->second == c) chunked_.erase(it);
  }
}

}  // namespace axon::daemon
