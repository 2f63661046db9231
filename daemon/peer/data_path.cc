#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/peer/peer_manager.h"
#include "daemon/ucx/loop.h"

// PeerManager's message path: the data endpoints that messages take, bound
// to a peer by its handshake nonce, and sending on them. The rest of the
// class is in peer_manager.cc.

namespace axon::daemon {

void PeerManager::ConnectData(Peer& peer) {
  if (!options_.data_endpoints || peer.their_address.empty() || worker_address_.empty()) return;
  const uint64_t id = next_connection_id_++;
  auto ep = ucx::Endpoint::ConnectToWorker(
      data_, peer.their_address, [this, id](const absl::Status& st) { OnConnectionError(id, st); });
  if (!ep.ok()) {
    spdlog::warn("peer {}: no data endpoint ({}); messages share the control connection", peer.name,
                 ep.status().message());
    return;
  }
  peer.data_ep = *std::move(ep);
  peer.data_connection_id = id;
  // The peer learns which of its endpoints this is from its own nonce, which
  // only the authenticated control connection carried.
  wire::Header header{.type = wire::MessageType::kDataBind};
  peer.data_ep->SendAm(kAmId, wire::Encode(header, peer.their_nonce), {}, nullptr);
}

void PeerManager::OnDataBind(ucx::EndpointId from, absl::Span<const uint8_t> body) {
  for (auto& [name, peer] : peers_) {
    // The dialer binds as soon as it is up, which is before this node (the
    // acceptor) has its hello-auth: the bind travels on the data worker and
    // may overtake it. Its frames wait in `early` until then.
    const bool nonce_sent =
        peer.state == PeerState::kUp ||
        (peer.state == PeerState::kConnecting && peer.handshake == Handshake::kAwaitAuth);
    if (nonce_sent && body.size() == wire::kNonceSize && wire::ProofMatches(body, peer.my_nonce)) {
      peer.data_in = from;
      spdlog::debug("peer {}: data endpoint bound", name);
      return;
    }
  }
  spdlog::warn("peer plane: a data endpoint bound with an unknown nonce; ignored");
}

void PeerManager::SetHandlersFromLoop(Handlers handlers) {
  AXON_DCHECK_ON_LOOP();
  handlers_ = std::move(handlers);
}

bool PeerManager::ConnectFromLoop(const std::string& node) {
  AXON_DCHECK_ON_LOOP();
  Peer* peer = FindPeer(node);
  if (peer == nullptr || !peer->member || !peer->on_demand) return false;
  if (peer->closing) return true;  // sends wait for the next connection
  if (peer->state == PeerState::kDown) Dial(*peer);
  return peer->state == PeerState::kConnecting;
}

PeerManager::Peer* PeerManager::FindPeer(const std::string& node) {
  return last_peer_.Find(peers_, node);
}

absl::Status PeerManager::CheckUpFromLoop(const std::string& node) {
  AXON_DCHECK_ON_LOOP();
  const Peer* found = FindPeer(node);
  if (found == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no node '", node, "' among the peers of node '", options_.node_name, "'"));
  }
  const Peer& peer = *found;
  if (peer.closing) {
    return absl::UnavailableError(absl::StrCat("peer ", node, " is closing (idle)"));
  }
  if (!peer.member && peer.state != PeerState::kUp) {
    return absl::UnavailableError(absl::StrCat("node ", node, " left the cluster"));
  }
  if (peer.state != PeerState::kUp) {
    return absl::UnavailableError(
        absl::StrCat("peer ", node, " is ", PeerStateName(peer.state),
                     peer.stats.last_error.empty() ? "" : ": " + peer.stats.last_error));
  }
  return absl::OkStatus();
}

void PeerManager::DropFromLoop(const std::string& node, const std::string& why) {
  AXON_DCHECK_ON_LOOP();
  auto it = peers_.find(node);
  if (it != peers_.end() && it->second.state != PeerState::kDown) MarkDown(it->second, why);
}

void PeerManager::DropFromLoopIf(const std::string& node, uint64_t connection,
                                 const std::string& why) {
  AXON_DCHECK_ON_LOOP();
  auto it = peers_.find(node);
  if (it != peers_.end() && it->second.connection_id == connection &&
      it->second.state != PeerState::kDown) {
    MarkDown(it->second, why);
  }
}

void PeerManager::SetShardFanoutFromLoop(ShardFanout fanout) {
  AXON_DCHECK_ON_LOOP();
  fanout_ = std::move(fanout);
  for (const auto& [name, peer] : peers_) {  // those up before the shards were
    if (peer.state == PeerState::kUp) FanOutUp(peer);
  }
}

bool PeerManager::PeerTakesCudaFromLoop(const std::string& node) const {
  AXON_DCHECK_ON_LOOP();
  auto it = peers_.find(node);
  return it != peers_.end() && it->second.stats.peer_cuda_memory;
}

bool PeerManager::PeerSharesGpusFromLoop(const std::string& node) {
  AXON_DCHECK_ON_LOOP();
  auto it = peers_.find(node);
  if (it == peers_.end()) return false;
  Peer& peer = it->second;
  if (peer.state != PeerState::kUp || !peer.data_ep) return false;
  if (peer.shares_gpus_on == peer.data_connection_id) return true;
  // Asked again until the lane shows (UCX may still be wiring it up).
  if (!HasCudaIpcLane(*peer.data_ep)) return false;
  peer.shares_gpus_on = peer.data_connection_id;
  return true;
}

absl::Status PeerManager::SendFrameFromLoop(const std::string& node, wire::MessageType type,
                                            FrameWriter frame, ucx::Parts&& parts,
                                            ucx::Keepalives&& keep, ucx::AmProtocol protocol,
                                            uint64_t sequence, ucx::MemoryKind memory) {
  AXON_DCHECK_ON_LOOP();
  Peer* found = FindPeer(node);  // once per message: CheckUpFromLoop only says why not
  if (found == nullptr || found->state != PeerState::kUp) return CheckUpFromLoop(node);
  Peer& peer = *found;
  if (!peer.ep && !peer.data_ep) return NotConnected(node);
  ++peer.data_frames;
  const uint64_t bytes = SendFrameOn(peer.data_ep ? *peer.data_ep : *peer.ep, frame_, type, frame,
                                     std::move(parts), std::move(keep), protocol, sequence, memory);
  peer.stats.messages_sent++;
  peer.stats.bytes_sent += bytes;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ucx::MemoryHandle>> PeerManager::RegisterFromLoop(void* address,
                                                                                 size_t length) {
  AXON_DCHECK_ON_LOOP();
  return ucx::MemoryHandle::Map(data_.context(), address, length, ucx::MemoryKind::kHost);
}

absl::Status PeerManager::NotConnected(const std::string& node) {
  absl::Status st = CheckUpFromLoop(node);
  return st.ok() ? absl::UnavailableError(absl::StrCat("peer ", node, " is closing")) : st;
}

ucx::Endpoint* PeerManager::DataEndpoint(const std::string& node) {
  Peer* found = FindPeer(node);
  if (found == nullptr || found->state != PeerState::kUp) return nullptr;
  return found->data_ep ? found->data_ep.get() : found->ep.get();
}

absl::StatusOr<std::unique_ptr<ucx::RemoteKey>> PeerManager::UnpackKeyFromLoop(
    const std::string& node, absl::Span<const uint8_t> packed) {
  AXON_DCHECK_ON_LOOP();
  ucx::Endpoint* ep = DataEndpoint(node);
  if (ep == nullptr) return NotConnected(node);
  return ucx::RemoteKey::Unpack(*ep, packed);
}

void PeerManager::RmaFromLoop(const std::string& node, bool put, void* local, size_t length,
                              uint64_t address, const ucx::RemoteKey& key,
                              ucx::Endpoint::SendDone done) {
  AXON_DCHECK_ON_LOOP();
  ucx::Endpoint* ep = DataEndpoint(node);
  if (ep == nullptr) return done(NotConnected(node));
  Peer& peer = *FindPeer(node);
  if (put) {
    peer.stats.bytes_sent += length;
    ep->Put(local, length, address, key, std::move(done));
  } else {
    peer.stats.bytes_received += length;
    ep->Get(local, length, address, key, std::move(done));
  }
}

void PeerManager::FlushFromLoop(const std::string& node, ucx::Endpoint::SendDone done) {
  AXON_DCHECK_ON_LOOP();
  ucx::Endpoint* ep = DataEndpoint(node);
  if (ep == nullptr) return done(NotConnected(node));
  ep->Flush(std::move(done));
}

}  // namespace axon::daemon
