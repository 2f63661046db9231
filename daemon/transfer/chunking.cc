#include "daemon/transfer/chunking.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/engine/remote_path.h"
#include "daemon/transfer/gpu_bounce.h"

namespace axon::daemon {

void Chunking::Send(NodeLink& link, Outgoing&& send) {
  const bool direct = path_.DirectWith(send.node);
  send.generation = link.generation();
  // Later sends wait until chunk 0 is posted: order holds (later chunks may
  // follow later messages; the receiver sorts them by message).
  link.Hold(GpuBounce::kCopyingHold);
  send.chunks = std::make_shared<Outgoing::Chunks>();
  Outgoing::Chunks& c = *send.chunks;
  c.count = (send.length + kChunk - 1) / kChunk;
  c.unanswered = c.count;
  c.first_id = path_.TakeMessageIds(c.count);  // chunk i is first_id + i
  c.direct = direct;
  while (c.staged < std::min(c.count, kChunksInFlight)) StageNext(send);
}

void Chunking::StageNext(const Outgoing& send) {
  Outgoing::Chunks& c = *send.chunks;
  const uint64_t i = c.staged++;
  const uint64_t offset = i * kChunk;
  const uint64_t bytes = std::min(kChunk, send.length - offset);
  wire::DataBody body{
      .message_id = c.first_id + i, .total = send.length, .offset = offset, .first_id = c.first_id};
  NodeLink* n = path_.Live(send);
  if (c.status.ok() || n == nullptr) {
    // Small pieces go eagerly, which UCX does from host memory.
    bounce_.StagePiece(send, offset, bytes, std::move(body),
                       c.direct && bytes > path_.eager_limit());
    return;
  }
  // Failed already (refused, withdrawn, not stageable): no copy. Never
  // chunk 0, which went first.
  path_.Post(*n, Outgoing(send), {}, {}, body);
}

void Chunking::Answered(const Outgoing& send, absl::Status status) {
  Outgoing::Chunks& c = *send.chunks;
  if (!status.ok() && c.status.ok()) c.status = std::move(status);
  // An answer makes room for the next chunk. To a node gone or down, the
  // chunks not yet staged never go, and nobody will answer them: all at
  // once (not one by one, each failing to post: a deep recursion).
  if (c.staged < c.count && (path_.Live(send) == nullptr || !path_.NodeUp(send.node))) {
    c.unanswered -= c.count - c.staged;
    c.staged = c.count;
  }
  if (c.staged < c.count) StageNext(send);
  if (--c.unanswered > 0) return;
  path_.Complete(send, c.status);
}

bool Chunking::Arrived(const std::shared_ptr<Incoming>& in) {
  const std::pair<std::string, uint64_t> key{in->node, in->first_id};
  if (in->offset == 0) {  // chunk 0 stands for the message in the engine
    auto c = std::make_shared<Arriving>();
    c->node = in->node;
    c->first_id = in->first_id;
    c->total = in->total;
    c->arrived = std::min(kChunk, c->total);
    arriving_[key] = c;
    return true;
  }
  auto it = arriving_.find(key);
  if (it == arriving_.end()) {
    path_.Ack(*in, absl::InvalidArgumentError("a chunk of a message that is not arriving"));
    return false;
  }
  std::shared_ptr<Arriving> c = it->second;
  c->arrived += std::min(kChunk, c->total - in->offset);
  switch (c->state) {
    case State::kLanding:
      LandChunk(c, in);
      break;
    case State::kDone:  // refused or withdrawn
      RefuseChunk(c, *in);
      break;
    case State::kArriving:
      c->early.push_back(in);
      break;
  }
  return false;
}

void Chunking::Land(std::shared_ptr<Incoming> first, std::shared_ptr<Region> region, uint8_t* into,
                    Then then) {
  auto it = arriving_.find({first->node, first->first_id});
  if (it == arriving_.end()) {  // its node went away meanwhile
    const absl::Status gone =
        absl::UnavailableError(absl::StrCat("node ", first->node, " went away"));
    path_.Ack(*first, gone);
    then(gone);
    return;
  }
  std::shared_ptr<Arriving> c = it->second;
  c->state = State::kLanding;
  c->region = std::move(region);
  c->into = into;
  c->done = std::move(then);
  LandChunk(c, std::move(first));
  for (auto& chunk : std::exchange(c->early, {})) LandChunk(c, std::move(chunk));
}

void Chunking::LandChunk(const std::shared_ptr<Arriving>& c, std::shared_ptr<Incoming> chunk) {
  const uint64_t expected = std::min(kChunk, c->total - chunk->offset);
  if (chunk->bytes != expected) {  // sent empty: the sender could not stage it
    const absl::Status lost = absl::DataLossError(
        absl::StrCat("the sender could not stage bytes [", chunk->offset, ", +", expected, ")"));
    path_.Ack(*chunk, lost);
    ChunkLanded(c, expected, lost);
    return;
  }
  path_.LandKind(*chunk, *c->region)
      .Land(chunk, c->region, c->into + chunk->offset, [this, c, chunk, expected](absl::Status st) {
        path_.Ack(*chunk, st);
        ChunkLanded(c, expected, st);
      });
}

void Chunking::ChunkLanded(const std::shared_ptr<Arriving>& c, uint64_t bytes,
                           const absl::Status& st) {
  if (!st.ok() && c->status.ok()) c->status = st;
  c->landed += bytes;
  if (c->landed == c->total && c->state != State::kDone) {
    c->state = State::kDone;
    c->done(c->status);
  }
  MaybeForget(c);
}

void Chunking::RefuseChunk(const std::shared_ptr<Arriving>& c, const Incoming& chunk) {
  path_.Ack(chunk, c->status);
  MaybeForget(c);
}

bool Chunking::Refuse(const Incoming& first, const absl::Status& why) {
  auto it = arriving_.find({first.node, first.message_id});
  if (it == arriving_.end()) return false;
  std::shared_ptr<Arriving> c = it->second;
  c->status = why;
  c->state = State::kDone;
  path_.Ack(first, why);
  for (const auto& chunk : std::exchange(c->early, {})) path_.Ack(*chunk, why);
  MaybeForget(c);
  return true;
}

void Chunking::MaybeForget(const std::shared_ptr<Arriving>& c) {
  if (c->state == State::kDone && c->arrived == c->total) {
    auto it = arriving_.find({c->node, c->first_id});
    if (it != arriving_.end() && it->second == c) arriving_.erase(it);
  }
}

void Chunking::NodeDown(const std::string& node, const absl::Status& gone) {
  // A landing one fails now: its other chunks will never come.
  for (auto it = arriving_.begin(); it != arriving_.end();) {
    if (it->first.first != node) {
      ++it;
      continue;
    }
    std::shared_ptr<Arriving> c = it->second;
    it = arriving_.erase(it);
    if (c->state == State::kLanding) {
      c->state = State::kDone;
      c->done(gone);
    }
  }
}

}  // namespace axon::daemon
