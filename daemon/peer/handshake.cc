#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/peer/dial_rules.h"
#include "daemon/peer/peer_manager.h"

// PeerManager's handshake: a hello on a connection this node accepted (taken,
// or refused with a reason: dial_rules.h decides), the dialer's check of the
// acceptor's hello, and the acceptor's check of the hello-auth. The rest of
// the class is in peer_manager.cc, data_path.cc and members.cc.

namespace axon::daemon {

void PeerManager::RefuseUnbound(size_t index, const std::string& why) {
  Unbound& u = unbound_[index];
  spdlog::warn("peer plane: refused a connection: {}", why);
  if (u.ep) {
    SendOn(*u.ep, wire::MessageType::kReject, wire::EncodeReject(why), {}, 0);
    // The dialer closes the connection when the reject reaches it (the tick
    // sweeps it then, or after dead_after). Closed from here, it could go
    // before the reject left: UCX holds sends until the connection is wired
    // up, and a forced close drops them. The dialer would then see the
    // connection reset, not why; in crossed dials it would fail the sends
    // waiting for the very peer whose connection is being kept.
    u.refused = true;
    u.since = absl::Now();
  }
}

void PeerManager::OnHelloFromUnbound(size_t index, const wire::Hello& hello) {
  auto it = peers_.find(hello.node_name);
  HelloFrom from;
  if (it != peers_.end()) {
    const Peer& known = it->second;
    from = {.member = known.member,
            .on_demand = known.on_demand,
            .up = known.state == PeerState::kUp,
            .connecting = known.state == PeerState::kConnecting,
            .dialing = known.handshake == Handshake::kAwaitHello,
            .connected = known.ep != nullptr};
  }
  switch (JudgeHello(options_.node_name, hello.node_name, from)) {
    case HelloVerdict::kRefuseOwnName:
      RefuseUnbound(
          index, absl::StrCat("duplicate name: '", hello.node_name, "' is this node's own name"));
      return;
    case HelloVerdict::kRefuseUnknown:
      RefuseUnbound(index, absl::StrCat("unknown node name '", hello.node_name, "' (not ",
                                        options_.config.discovery == "etcd"
                                            ? "a member under etcd.prefix, as seen by node '"
                                            : "in peers.static of node '",
                                        options_.node_name, "')"));
      return;
    case HelloVerdict::kRefuseCrossed:
      RefuseUnbound(index, std::string(kCrossedDials));
      return;
    case HelloVerdict::kRefuseConnected:
      RefuseUnbound(
          index, absl::StrCat("duplicate name: node '", hello.node_name, "' is already connected (",
                              PeerStateName(it->second.state), ")"));
      return;
    case HelloVerdict::kReplaceOurDial:
      it->second.ep.reset();  // ours goes; theirs is taken below
      it->second.handshake = Handshake::kNone;
      break;
    case HelloVerdict::kAccept:
      break;
  }
  Peer& peer = it->second;
  // The dialer proves it holds the token in its hello-auth, after our hello.
  auto nonce = wire::RandomNonce();
  if (!nonce.ok()) {
    RefuseUnbound(index, std::string(nonce.status().message()));
    return;
  }
  peer.ep = std::move(unbound_[index].ep);
  peer.connection_id = unbound_[index].connection_id;
  peer.state = PeerState::kConnecting;
  peer.since = peer.connect_started = peer.last_heard = absl::Now();
  peer.handshake = Handshake::kAwaitAuth;
  peer.their_nonce = hello.nonce;
  peer.my_nonce = *nonce;
  peer.their_address = hello.worker_address;
  peer.their_shard_addresses = hello.shard_addresses;
  peer.stats.peer_cuda_memory = (hello.capabilities & wire::kCapCudaMemory) != 0;
  peer.stats.messages_received++;
  auto proof = wire::MakeProof(options_.config.token, wire::Role::kAcceptor, peer.their_nonce,
                               peer.my_nonce, options_.node_name);
  Send(peer, wire::MessageType::kHello,
       wire::EncodeHello(MyHello(peer.my_nonce, std::move(proof))));
}

void PeerManager::OnHelloAtDialer(Peer& peer, const wire::Hello& hello) {
  if (hello.node_name != peer.name) {
    Send(peer, wire::MessageType::kReject, wire::EncodeReject("unexpected node name"));
    MarkDown(peer, absl::StrCat("expected node '", peer.name, "' at ", peer.address_text,
                                " but reached '", hello.node_name, "'"));
    return;
  }
  const auto expected = wire::MakeProof(options_.config.token, wire::Role::kAcceptor, peer.my_nonce,
                                        hello.nonce, hello.node_name);
  if (!wire::ProofMatches(hello.proof, expected)) {
    const std::string why = options_.config.token.empty()
                                ? "the peer requires a token and this node has none"
                                : "wrong token (the peer's proof does not match)";
    Send(peer, wire::MessageType::kReject, wire::EncodeReject(why));
    MarkDown(peer, absl::StrCat("refused: ", why));
    return;
  }
  peer.their_nonce = hello.nonce;
  peer.their_address = hello.worker_address;
  peer.their_shard_addresses = hello.shard_addresses;
  peer.stats.peer_cuda_memory = (hello.capabilities & wire::kCapCudaMemory) != 0;
  Send(peer, wire::MessageType::kHelloAuth,
       wire::EncodeProof(wire::MakeProof(options_.config.token, wire::Role::kDialer, peer.my_nonce,
                                         peer.their_nonce, options_.node_name)));
  MarkUp(peer);
}

void PeerManager::OnAuth(Peer& peer, absl::Span<const uint8_t> body) {
  auto proof = wire::DecodeProof(body);
  const auto expected = wire::MakeProof(options_.config.token, wire::Role::kDialer,
                                        peer.their_nonce, peer.my_nonce, peer.name);
  if (!proof.ok() || !wire::ProofMatches(*proof, expected)) {
    const std::string why = "wrong token (the proof does not match)";
    Send(peer, wire::MessageType::kReject, wire::EncodeReject(why));
    MarkDown(peer, absl::StrCat("refused: ", why));
    return;
  }
  MarkUp(peer);
}

}  // namespace axon::daemon
