// What shard 0's peer plane (PeerManager) tells the other engine shards of
// each peer connection, so that shard k sends and receives on data
// endpoints of its own: its worker to the peer's shard-k worker, bound with
// the peer's nonce like shard 0's (common/wire/handshake.h). ShardPeers is
// the other end, on each shard.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/wire/handshake.h"

namespace axon::daemon {

// Frames and bytes the shards moved to and from one peer: PeerManager adds
// them to the peer's figures and counts them as traffic for idle close.
struct ShardTraffic {
  std::atomic<uint64_t> frames_sent{0}, frames_received{0};
  std::atomic<uint64_t> bytes_sent{0}, bytes_received{0};
  uint64_t frames() const { return frames_sent.load() + frames_received.load(); }
};

struct ShardLinkInfo {
  std::string node;
  uint64_t connection = 0;       // PeerManager's id of the peer's connection
  std::vector<uint8_t> address;  // the peer's shard-k worker address
  wire::Nonce their_nonce{};     // sent in the bind
  wire::Nonce my_nonce{};        // what the peer's bind must carry
  bool takes_cuda = false;       // the peer's kCapCudaMemory
  std::shared_ptr<ShardTraffic> traffic;
};

// How PeerManager reaches the shards (each function posts to their loops).
struct ShardFanout {
  std::function<void(size_t shard, const ShardLinkInfo& link)> up;
  std::function<void(const std::string& node, const std::string& why)> down;
  std::function<void()> tick;
};

}  // namespace axon::daemon
