// ShardPeers: the peer plane of engine shard k > 0 (engine.shard_links).
// Shard 0's PeerManager owns the connections: the listener, handshakes,
// keepalives, membership. For each peer that is up, and that runs a shard k
// too, it tells this shard (ShardFanout, posted to its loop) the peer's
// shard-k worker address and the connection's nonces. ShardPeers then
// connects its own data endpoint there, binds it with the peer's nonce, and
// takes the endpoint the peer's shard k binds here with this node's nonce.
// Messages between sessions of shard k on both nodes go on these, so they
// take neither shard 0's thread nor a hand-off to it.
//
// A shard link ends when shard 0 says the peer went down, or when UCX
// reports it broken: then shard 0 is asked to drop the whole connection (if
// it is still the one the link belonged to), and every shard hears of it.
// One-sided transfers keep to shard 0 (EngineShards routes them): this
// plane registers no memory and serves no RMA.
//
// Lives on its shard's loop: every method ends in FromLoop.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "daemon/peer/peer_plane.h"
#include "daemon/peer/shard_link.h"
#include "daemon/ucx/endpoint.h"
#include "daemon/ucx/worker.h"

namespace axon::daemon {

class ShardPeers final : public PeerPlane {
 public:
  // Asks shard 0 to drop `node`'s connection `connection` (posted there).
  using Drop =
      std::function<void(const std::string& node, uint64_t connection, const std::string& why)>;

  // Takes the peer plane's active messages on `worker` (the shard's data
  // worker) from now on: before this node's hello lists the worker's
  // address, so that no peer's bind finds nobody there.
  static absl::StatusOr<std::unique_ptr<ShardPeers>> StartFromLoop(ucx::Worker& worker,
                                                                   size_t shard);
  ~ShardPeers() override;
  // How a broken link reaches shard 0 (set once shard 0's plane exists).
  void SetDropFromLoop(Drop drop);

  // From shard 0, in the order it saw them.
  void UpFromLoop(const ShardLinkInfo& link);
  void DownFromLoop(const std::string& node, const std::string& why);
  void TickFromLoop();
  // Whether this shard sends to `node` on its own link. Decided by the first
  // send after the node went down or came up (own if the link is there and
  // `may_own()`: nothing of this shard's waits on shard 0 for the node), and
  // kept until it goes down: a message never overtakes one sent before it
  // the other way.
  bool OwnRouteFromLoop(const std::string& node, absl::FunctionRef<bool()> may_own);

  void SetHandlersFromLoop(Handlers handlers) override;
  absl::Status CheckUpFromLoop(const std::string& node) override;
  bool ConnectFromLoop(const std::string& node) override;
  void DropFromLoop(const std::string& node, const std::string& why) override;
  bool PeerTakesCudaFromLoop(const std::string& node) const override;
  bool PeerSharesGpusFromLoop(const std::string& node) override;
  absl::Status SendFrameFromLoop(const std::string& node, wire::MessageType type, FrameWriter frame,
                                 ucx::Parts&& parts, ucx::Keepalives&& keep,
                                 ucx::AmProtocol protocol, uint64_t sequence,
                                 ucx::MemoryKind memory = ucx::MemoryKind::kHost) override;
  // One-sided transfers stay on shard 0: these fail UNIMPLEMENTED.
  absl::StatusOr<std::unique_ptr<ucx::MemoryHandle>> RegisterFromLoop(void* address,
                                                                      size_t length) override;
  absl::StatusOr<std::unique_ptr<ucx::RemoteKey>> UnpackKeyFromLoop(
      const std::string& node, absl::Span<const uint8_t> packed) override;
  void RmaFromLoop(const std::string& node, bool put, void* local, size_t length, uint64_t address,
                   const ucx::RemoteKey& key, ucx::Endpoint::SendDone done) override;
  void FlushFromLoop(const std::string& node, ucx::Endpoint::SendDone done) override;

 private:
  struct Link {
    ShardLinkInfo info;
    std::unique_ptr<ucx::Endpoint> ep;            // to the peer's shard
    uint64_t ep_id = 0;                           // of `ep`, for its error callback
    ucx::EndpointId in = ucx::EndpointId::kNone;  // the peer's, bound here
    bool shares_gpus = false;
  };
  // An endpoint that bound before shard 0 said whose nonce it carries, and
  // what came on it since (in order).
  struct Unclaimed {
    wire::Nonce nonce{};
    absl::Time since;
    std::vector<ucx::AmMessage> frames;
  };
  // Bounds on what unclaimed endpoints hold (as PeerManager's early frames):
  // past them the endpoint's frames go, and its sender's link stalls and is
  // dropped by its own check.
  static constexpr size_t kMaxUnclaimedFrames = 4096;
  static constexpr size_t kMaxUnclaimed = 64;

  ShardPeers(ucx::Worker& worker, size_t shard) : worker_(worker), shard_(shard) {}
  void OnMessage(ucx::AmMessage& message);
  void Deliver(Link& link, ucx::AmMessage& message);
  void OnEndpointError(uint64_t ep_id, const absl::Status& status);
  Link* FindByIncoming(ucx::EndpointId from);
  // Ends `node`'s link here and tells the message path (it may be absent:
  // the message path still hears, so it forgets its routes to the node).
  void End(const std::string& node, const std::string& why);

  ucx::Worker& worker_;
  const size_t shard_;
  Drop drop_;
  Handlers handlers_;
  std::map<std::string, Link> links_;
  std::map<ucx::EndpointId, Unclaimed> unclaimed_;
  std::map<std::string, bool> routes_;  // OwnRouteFromLoop's answers
  uint64_t next_ep_id_ = 1;
  std::vector<uint8_t> frame_;  // SendFrameFromLoop's, kept for the next frame
  // False once destroyed: UCX completions that outlive it check it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace axon::daemon
