#include "daemon/peer/shard_peers.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/wire/header.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon {

namespace {
// An endpoint that bound with a nonce no peer's link claimed within this
// long is forgotten, with what came on it.
constexpr absl::Duration kUnclaimedFor = absl::Seconds(30);
}  // namespace

absl::StatusOr<std::unique_ptr<ShardPeers>> ShardPeers::StartFromLoop(ucx::Worker& worker,
                                                                      size_t shard) {
  AXON_DCHECK_ON_LOOP();
  std::unique_ptr<ShardPeers> peers(new ShardPeers(worker, shard));
  ShardPeers* raw = peers.get();
  if (auto st = worker.SetAmHandler(kPeerAmId, [raw](ucx::AmMessage& m) { raw->OnMessage(m); });
      !st.ok()) {
    return st;
  }
  return peers;
}

ShardPeers::~ShardPeers() {
  *alive_ = false;
  worker_.RemoveAmHandler(kPeerAmId);
  // The endpoints close here, before the worker goes (their owner's order).
  for (auto& [node, link] : links_) link.ep.reset();
}

void ShardPeers::SetDropFromLoop(Drop drop) {
  AXON_DCHECK_ON_LOOP();
  drop_ = std::move(drop);
}

void ShardPeers::UpFromLoop(const ShardLinkInfo& info) {
  AXON_DCHECK_ON_LOOP();
  // An earlier connection's link is gone by now (shard 0 posts the down
  // before the next up); one left over goes quietly.
  if (auto old = links_.find(info.node); old != links_.end()) {
    std::unique_ptr<ucx::Endpoint> ep = std::move(old->second.ep);
    links_.erase(old);
  }
  // A route this shard chose before (through shard 0) stays: messages it
  // sent that way may still be on their way.
  Link& link = links_[info.node];
  link.info = info;
  link.ep_id = next_ep_id_++;
  auto ep = ucx::Endpoint::ConnectToWorker(
      worker_, info.address, [this, alive = alive_, id = link.ep_id](const absl::Status& st) {
        if (*alive) OnEndpointError(id, st);
      });
  if (!ep.ok()) {
    const std::string why =
        absl::StrCat("shard ", shard_, " cannot reach the peer's shard: ", ep.status().message());
    links_.erase(info.node);
    if (drop_) drop_(info.node, info.connection, why);
    return;
  }
  link.ep = *std::move(ep);
  wire::Header header{.type = wire::MessageType::kDataBind};
  link.ep->SendAm(kPeerAmId, wire::Encode(header, info.their_nonce), {}, nullptr);
  // The peer's bind may have come first.
  for (auto it = unclaimed_.begin(); it != unclaimed_.end(); ++it) {
    if (!wire::ProofMatches(it->second.nonce, info.my_nonce)) continue;
    link.in = it->first;
    std::vector<ucx::AmMessage> early = std::move(it->second.frames);
    unclaimed_.erase(it);
    const std::string node = info.node;
    for (ucx::AmMessage& message : early) {
      auto found = links_.find(node);
      if (found == links_.end()) break;  // one of them ended it
      Deliver(found->second, message);
    }
    break;
  }
  spdlog::debug("peer {}: shard {} link up", info.node, shard_);
}

void ShardPeers::DownFromLoop(const std::string& node, const std::string& why) {
  AXON_DCHECK_ON_LOOP();
  End(node, why);
}

void ShardPeers::End(const std::string& node, const std::string& why) {
  auto it = links_.find(node);
  std::unique_ptr<ucx::Endpoint> ep;
  if (it != links_.end()) {
    // Out of the map before it closes: a force close may complete sends on
    // the spot, and what their callbacks do must find the link gone.
    ep = std::move(it->second.ep);
    links_.erase(it);
  }
  ep.reset();
  routes_.erase(node);
  if (handlers_.on_down) handlers_.on_down(node, why);
}

bool ShardPeers::OwnRouteFromLoop(const std::string& node, absl::FunctionRef<bool()> may_own) {
  AXON_DCHECK_ON_LOOP();
  auto [it, added] = routes_.try_emplace(node, false);
  if (added) it->second = links_.count(node) != 0 && may_own();
  return it->second;
}

void ShardPeers::TickFromLoop() {
  AXON_DCHECK_ON_LOOP();
  const absl::Time now = absl::Now();
  std::erase_if(unclaimed_, [now](const auto& e) { return now - e.second.since > kUnclaimedFor; });
  if (handlers_.on_tick) handlers_.on_tick();
}

void ShardPeers::OnEndpointError(uint64_t ep_id, const absl::Status& status) {
  for (auto& [node, link] : links_) {
    if (link.ep_id != ep_id) continue;
    const std::string name = node;  // `link` goes with the drop
    DropFromLoop(name, absl::StrCat("shard ", shard_, "'s connection broke: ", status.message()));
    return;
  }
}

ShardPeers::Link* ShardPeers::FindByIncoming(ucx::EndpointId from) {
  for (auto& [node, link] : links_) {
    if (link.in == from) return &link;
  }
  return nullptr;
}

void ShardPeers::OnMessage(ucx::AmMessage& message) {
  // Its endpoint closed before it was handled (ucx::Worker::ForgetEndpoint).
  if (message.from == ucx::EndpointId::kNone) return;
  auto decoded = wire::Decode(message.header, message.data_length());
  if (MustPull(message, decoded)) {
    PullThenHandle(message, alive_, absl::StrCat("shard ", shard_),
                   [this](ucx::AmMessage& m) { OnMessage(m); });
    return;
  }
  Link* link = FindByIncoming(message.from);
  if (link != nullptr) {
    Deliver(*link, message);
    return;
  }
  if (!decoded.ok()) {
    spdlog::warn("shard {}: dropped a malformed frame from an unbound endpoint: {}", shard_,
                 decoded.status().message());
    return;
  }
  if (decoded->header.type == wire::MessageType::kDataBind) {
    if (decoded->body.size() != wire::kNonceSize) {
      spdlog::warn("shard {}: a data endpoint bound with a malformed nonce; ignored", shard_);
      return;
    }
    for (auto& [node, l] : links_) {
      if (wire::ProofMatches(decoded->body, l.info.my_nonce)) {
        l.in = message.from;
        return;
      }
    }
    // Shard 0's word of this connection may still be on its way here.
    if (unclaimed_.size() >= kMaxUnclaimed && unclaimed_.count(message.from) == 0) {
      spdlog::warn("shard {}: {} data endpoints bound that no peer claimed; ignored one more",
                   shard_, unclaimed_.size());
      return;
    }
    Unclaimed& u = unclaimed_[message.from];
    std::copy(decoded->body.begin(), decoded->body.end(), u.nonce.begin());
    u.since = absl::Now();
    u.frames.clear();  // a new bind starts over
    return;
  }
  auto it = unclaimed_.find(message.from);
  if (it != unclaimed_.end()) {
    if (it->second.frames.size() < kMaxUnclaimedFrames) {
      it->second.frames.push_back(std::move(message));
    } else {
      spdlog::warn("shard {}: more than {} frames before shard 0 claimed their endpoint; dropped",
                   shard_, kMaxUnclaimedFrames);
      unclaimed_.erase(it);
    }
    return;
  }
  spdlog::warn("shard {}: dropped a {} frame from an endpoint no peer bound", shard_,
               wire::MessageTypeName(decoded->header.type));
}

void ShardPeers::Deliver(Link& link, ucx::AmMessage& message) {
  auto decoded = wire::Decode(message.header, message.data_length());
  const std::string node = link.info.node;
  if (!decoded.ok()) {
    DropFromLoop(node, absl::StrCat("protocol error: ", decoded.status().message()));
    return;
  }
  link.info.traffic->frames_received.fetch_add(1, std::memory_order_relaxed);
  link.info.traffic->bytes_received.fetch_add(message.header.size() + message.data_length(),
                                              std::memory_order_relaxed);
  switch (decoded->header.type) {
    case wire::MessageType::kDataBind:
      return;  // a repeat
    case wire::MessageType::kData:
    case wire::MessageType::kDataAck:
    case wire::MessageType::kDataAcks:
    case wire::MessageType::kDataCancel:
    case wire::MessageType::kDataHandleAnswer:
    case wire::MessageType::kDataHandleClosed:
      if (handlers_.on_data) handlers_.on_data(node, decoded->header, decoded->body, message);
      return;
    default:
      DropFromLoop(node,
                   absl::StrCat("protocol error: ", wire::MessageTypeName(decoded->header.type),
                                " on shard ", shard_, "'s data endpoint"));
      return;
  }
}

void ShardPeers::SetHandlersFromLoop(Handlers handlers) {
  AXON_DCHECK_ON_LOOP();
  handlers_ = std::move(handlers);
}

absl::Status ShardPeers::CheckUpFromLoop(const std::string& node) {
  AXON_DCHECK_ON_LOOP();
  if (links_.count(node) == 0) {
    return absl::UnavailableError(absl::StrCat("node ", node, " has no link to shard ", shard_));
  }
  return absl::OkStatus();
}

bool ShardPeers::ConnectFromLoop(const std::string&) {
  AXON_DCHECK_ON_LOOP();
  return false;  // shard 0 connects
}

void ShardPeers::DropFromLoop(const std::string& node, const std::string& why) {
  AXON_DCHECK_ON_LOOP();
  auto it = links_.find(node);
  if (it == links_.end()) return;
  const uint64_t connection = it->second.info.connection;
  End(node, why);
  if (drop_) drop_(node, connection, why);
}

bool ShardPeers::PeerTakesCudaFromLoop(const std::string& node) const {
  AXON_DCHECK_ON_LOOP();
  auto it = links_.find(node);
  return it != links_.end() && it->second.info.takes_cuda;
}

bool ShardPeers::PeerSharesGpusFromLoop(const std::string& node) {
  AXON_DCHECK_ON_LOOP();
  auto it = links_.find(node);
  if (it == links_.end() || !it->second.ep) return false;
  if (!it->second.shares_gpus) it->second.shares_gpus = HasCudaIpcLane(*it->second.ep);
  return it->second.shares_gpus;
}

absl::Status ShardPeers::SendFrameFromLoop(const std::string& node, wire::MessageType type,
                                           FrameWriter frame, ucx::Parts&& parts,
                                           ucx::Keepalives&& keep, ucx::AmProtocol protocol,
                                           uint64_t sequence, ucx::MemoryKind memory) {
  AXON_DCHECK_ON_LOOP();
  auto it = links_.find(node);
  if (it == links_.end() || !it->second.ep) return CheckUpFromLoop(node);
  Link& link = it->second;
  const uint64_t bytes = SendFrameOn(*link.ep, frame_, type, frame, std::move(parts),
                                     std::move(keep), protocol, sequence, memory);
  link.info.traffic->frames_sent.fetch_add(1, std::memory_order_relaxed);
  link.info.traffic->bytes_sent.fetch_add(bytes, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ucx::MemoryHandle>> ShardPeers::RegisterFromLoop(void*, size_t) {
  return absl::UnimplementedError("one-sided transfers go through engine shard 0");
}

absl::StatusOr<std::unique_ptr<ucx::RemoteKey>> ShardPeers::UnpackKeyFromLoop(
    const std::string&, absl::Span<const uint8_t>) {
  return absl::UnimplementedError("one-sided transfers go through engine shard 0");
}

void ShardPeers::RmaFromLoop(const std::string&, bool, void*, size_t, uint64_t,
                             const ucx::RemoteKey&, ucx::Endpoint::SendDone done) {
  done(absl::UnimplementedError("one-sided transfers go through engine shard 0"));
}

void ShardPeers::FlushFromLoop(const std::string&, ucx::Endpoint::SendDone done) {
  done(absl::UnimplementedError("one-sided transfers go through engine shard 0"));
}

}  // namespace axon::daemon
