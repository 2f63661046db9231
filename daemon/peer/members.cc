#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/peer/peer_manager.h"
#include "daemon/ucx/loop.h"

// PeerManager's members found through etcd (peers.discovery: etcd): joins
// and leaves from the watch, and closing their idle connections by
// agreement. The rest of the class is in peer_manager.cc and data_path.cc.

namespace axon::daemon {

void PeerManager::MemberJoinedFromLoop(const std::string& name, const std::string& address,
                                       uint64_t incarnation) {
  AXON_DCHECK_ON_LOOP();
  if (name == options_.node_name || !ParseSocketAddress(address).ok()) return;
  auto it = peers_.find(name);
  if (it == peers_.end()) {
    Peer& peer = AddPeer(name, address);
    peer.incarnation = incarnation;
    peer.on_demand = true;
    spdlog::info("peer {}: joined at {}", name, address);
    return;
  }
  Peer& peer = it->second;
  const bool same = peer.member && peer.incarnation == incarnation && peer.address_text == address;
  peer.leave_by = absl::InfiniteFuture();
  if (same) return;  // its record came back: the connection stays
  spdlog::info("peer {}: joined at {}{}", name, address,
               peer.member ? " (a new incarnation)" : " again");
  const bool restarted = peer.incarnation != incarnation;
  peer.member = true;
  peer.on_demand = true;
  peer.incarnation = incarnation;
  peer.address = *ParseSocketAddress(address);
  peer.address_text = address;
  peer.backoff = absl::Milliseconds(options_.config.reconnect_min_ms);
  peer.next_attempt = absl::Now();
  // The connection to what was there goes (its work fails); sends that had
  // not left go to the new one (RemotePath redials through ConnectFromLoop).
  if (peer.state != PeerState::kDown) {
    MarkDown(peer, restarted ? "restarted (a new incarnation joined)" : "moved to a new address");
  }
}

void PeerManager::MemberLeftFromLoop(const std::string& name, absl::Duration grace) {
  AXON_DCHECK_ON_LOOP();
  auto it = peers_.find(name);
  if (it == peers_.end() || !it->second.member) return;
  Peer& peer = it->second;
  if (peer.state == PeerState::kUp) {
    peer.leave_by = absl::Now() + grace;
    spdlog::info("peer {}: its record left etcd; the connection stays for {} while it answers",
                 name, absl::StrCat(absl::ToInt64Milliseconds(grace), " ms"));
    return;
  }
  spdlog::info("peer {}: left", name);
  peer.member = false;
  if (peer.state != PeerState::kDown) MarkDown(peer, "left the cluster");
}

void PeerManager::CheckIdle(Peer& peer, absl::Time now) {
  const absl::Duration idle_close = absl::Milliseconds(options_.config.idle_close_ms);
  if (!peer.on_demand || idle_close == absl::ZeroDuration()) return;
  if (DataFrames(peer) != peer.frames_seen) {
    peer.frames_seen = DataFrames(peer);
    peer.quiet_since = now;
  }
  if (peer.closing) {
    // No answer, or agreed and the asker has not closed: within dead_after
    // either happens, else the connection stays.
    if (now - peer.closing_since > absl::Milliseconds(options_.config.dead_after_ms)) {
      StayOpen(peer);
    }
    return;
  }
  if (options_.node_name < peer.name && now - peer.quiet_since >= idle_close) {
    peer.closing = true;
    peer.closing_since = now;
    Send(peer, wire::MessageType::kIdleClose, {static_cast<uint8_t>(wire::IdleClose::kAsk)});
  }
}

void PeerManager::OnIdleClose(Peer& peer, absl::Span<const uint8_t> body) {
  if (body.size() != 1 || peer.state != PeerState::kUp) return;
  switch (static_cast<wire::IdleClose>(body[0])) {
    case wire::IdleClose::kAsk: {
      // Quiet here too for half the time (nothing sent or received since
      // the last tick either): nothing of ours is on its way. From now on
      // new sends wait, and the asker closes.
      const absl::Time now = absl::Now();
      const bool quiet =
          peer.on_demand && DataFrames(peer) == peer.frames_seen &&
          now - peer.quiet_since >= absl::Milliseconds(options_.config.idle_close_ms) / 2;
      if (quiet) {
        peer.closing = true;
        peer.closing_since = now;
      }
      Send(peer, wire::MessageType::kIdleClose,
           {static_cast<uint8_t>(quiet ? wire::IdleClose::kAgree : wire::IdleClose::kDecline)});
      return;
    }
    case wire::IdleClose::kAgree:
      if (peer.closing) MarkDown(peer, "idle");
      return;
    case wire::IdleClose::kDecline:
      if (peer.closing) StayOpen(peer);
      return;
  }
}

void PeerManager::StayOpen(Peer& peer) {
  peer.closing = false;
  peer.quiet_since = absl::Now();
  if (handlers_.on_up) handlers_.on_up(peer.name);  // what waited goes now
}

}  // namespace axon::daemon
