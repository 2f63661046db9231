// Large GPU sends as a stream of chunks of kChunk bytes, each through a
// bounce buffer (GpuBounce): each chunk is sent as soon as it is copied and
// copied up as soon as it lands, so the copies overlap the wire, with at
// most kChunksInFlight chunks of a send unanswered. A chunk that could not be
// staged, or that follows a failure, travels empty and fails the message.
//
// Sending: the send completes once every chunk is answered, with the first
// failure (Outgoing::Chunks). Receiving: chunk 0 stands for the whole message
// in the engine; the others follow it to where it landed. Per arriving
// message: kArriving (chunk 0 not matched yet; chunks park) -> kLanding ->
// kDone (landed, refused or withdrawn; later chunks are answered with its
// status).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/transfer/transfer.h"

namespace axon::daemon {

class GpuBounce;

class Chunking final : public Transfer {
 public:
  // Each chunk costs a fixed ~25-30 us beyond its bytes: 32 MiB chunks
  // against 8 MiB doubled the direct path at 64-256 MiB and halved its 64
  // MiB round trip.
  static constexpr uint64_t kChunk = uint64_t{32} << 20;
  // Chunks of one send in bounce buffers at once (256 MiB): the next is
  // staged as one is answered, so a send of any size holds at most this much
  // on each side. Less costs bandwidth on the direct path.
  static constexpr uint64_t kChunksInFlight = 8;

  Chunking(RemotePath& path, GpuBounce& bounce) : path_(path), bounce_(bounce) {}
  const char* name() const override { return "chunking"; }
  // Whether `send` goes in chunks: one part, larger than a chunk.
  static bool Takes(const Outgoing& send) { return send.more.empty() && send.length > kChunk; }
  void Send(NodeLink& link, Outgoing&& send) override;
  // Chunk 0 matched: it and every other chunk land from `into` on, each
  // acknowledged here as it lands; `then` runs once all have.
  void Land(std::shared_ptr<Incoming> first, std::shared_ptr<Region> region, uint8_t* into,
            Then then) override;

  // A chunk of `send` was answered with `status`: the next one goes; the
  // send completes when all are answered.
  void Answered(const Outgoing& send, absl::Status status);
  // A chunk arrived, in sequence order. Chunk 0 is filed and goes on to the
  // engine (true); the others follow their message (false: handled here).
  bool Arrived(const std::shared_ptr<Incoming>& in);
  // Refuses (or withdraws) the whole message whose chunk 0 is `first`:
  // false when it is not a chunked message arriving.
  bool Refuse(const Incoming& first, const absl::Status& why);
  // The node went: its messages landing fail with `gone`.
  void NodeDown(const std::string& node, const absl::Status& gone);

 private:
  enum class State { kArriving, kLanding, kDone };
  struct Arriving {
    std::string node;
    uint64_t first_id = 0;
    uint64_t total = 0;
    State state = State::kArriving;
    std::vector<std::shared_ptr<Incoming>> early;  // chunks that came before it was matched
    absl::Status status;                           // why it was refused, or its first failure
    std::shared_ptr<Region> region;
    uint8_t* into = nullptr;
    Then done;
    uint64_t arrived = 0, landed = 0;  // bytes
  };
  // Stages chunk `send.chunks->staged`: copied, or sent empty once the send
  // has failed (the receiver answers it either way).
  void StageNext(const Outgoing& send);
  void LandChunk(const std::shared_ptr<Arriving>& c, std::shared_ptr<Incoming> chunk);
  void ChunkLanded(const std::shared_ptr<Arriving>& c, uint64_t bytes, const absl::Status& st);
  // Answers a chunk that will not land; forgets the message once all came.
  void RefuseChunk(const std::shared_ptr<Arriving>& c, const Incoming& chunk);
  // Forgets `c` once every chunk came and it is done.
  void MaybeForget(const std::shared_ptr<Arriving>& c);

  RemotePath& path_;
  GpuBounce& bounce_;
  // By (node, chunk 0's message id).
  std::map<std::pair<std::string, uint64_t>, std::shared_ptr<Arriving>> arriving_;
};

}  // namespace axon::daemon
