#include "daemon/peer/peer_manager.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/peer/dial_rules.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon {
namespace {

// Message-path frames a peer may send on its data endpoint before this node
// has finished the handshake (see OnDataBind); more is a protocol error.
constexpr size_t kMaxEarlyFrames = 4096;

std::string Ms(absl::Duration d) { return absl::StrCat(absl::ToInt64Milliseconds(d), " ms"); }

}  // namespace

const char* PeerStateName(PeerState state) {
  switch (state) {
    case PeerState::kConnecting:
      return "connecting";
    case PeerState::kUp:
      return "up";
    case PeerState::kDown:
      return "down";
  }
  return "unknown";
}

PeerManager::PeerManager(ucx::Worker& control, ucx::Worker& data, PeerOptions options)
    : control_(control), data_(data), options_(std::move(options)) {}

PeerManager::~PeerManager() {
  *alive_ = false;
  control_.RemoveAmHandler(kAmId);
  if (&data_ != &control_) data_.RemoveAmHandler(kAmId);
  for (auto& [name, peer] : peers_) {
    for (auto& [seq, waiter] : peer.pings) {
      if (waiter.done) waiter.done(absl::UnavailableError("the daemon is shutting down"));
    }
    for (auto& [size, done] : peer.pings_waiting) {
      done(absl::UnavailableError("the daemon is shutting down"));
    }
  }
}

absl::StatusOr<std::unique_ptr<PeerManager>> PeerManager::StartFromLoop(ucx::Worker& control,
                                                                        ucx::Worker& data,
                                                                        PeerOptions options) {
  AXON_DCHECK_ON_LOOP();
  auto listen = ParseSocketAddress(options.config.listen);
  if (!listen.ok()) return listen.status();
  std::unique_ptr<PeerManager> pm(new PeerManager(control, data, std::move(options)));
  PeerManager* raw = pm.get();
  for (ucx::Worker* worker : {&control, &data}) {
    if (auto st = worker->SetAmHandler(kAmId, [raw](ucx::AmMessage& m) { raw->OnMessage(m); });
        !st.ok()) {
      return st;
    }
  }
  if (pm->options_.data_endpoints) {
    auto address = data.Address();
    if (address.ok()) {
      pm->worker_address_ = *std::move(address);
    } else {
      spdlog::warn("peer plane: no worker address ({}): messages share the control connection",
                   address.status().message());
    }
  }
  auto listener = ucx::Listener::Create(
      control, *listen, [raw](ucx::ConnectionRequest request) { raw->OnConnection(request); });
  if (!listener.ok()) return listener.status();
  pm->listener_ = *std::move(listener);

  for (const auto& entry : pm->options_.config.static_peers) {
    if (entry.name == pm->options_.node_name) continue;  // a shared list may name this node
    pm->AddPeer(entry.name, entry.address);              // validated with the config
  }
  spdlog::info("peer plane: listening on {} for {} peer(s)", pm->listener_->address().ToString(),
               pm->peers_.size());
  pm->TickFromLoop();
  return pm;
}

PeerManager::Peer& PeerManager::AddPeer(const std::string& name, const std::string& address) {
  const absl::Time now = absl::Now();
  Peer& peer = peers_[name];
  peer.name = name;
  peer.address = *ParseSocketAddress(address);
  peer.address_text = address;
  peer.dialer = options_.node_name < name;
  peer.since = now;
  peer.backoff = absl::Milliseconds(options_.config.reconnect_min_ms);
  peer.next_attempt = now;
  peer.stats.dialer = peer.dialer;
  return peer;
}

absl::Duration PeerManager::tick_interval() const {
  return std::clamp(absl::Milliseconds(options_.config.keepalive_ms) / 4, absl::Milliseconds(20),
                    absl::Milliseconds(250));
}

wire::Hello PeerManager::MyHello(const wire::Nonce& nonce, std::vector<uint8_t> proof) const {
  return wire::Hello{options_.node_name, options_.capabilities, options_.transports,     nonce,
                     std::move(proof),   worker_address_,       options_.shard_addresses};
}

void PeerManager::SendOn(ucx::Endpoint& ep, wire::MessageType type, std::vector<uint8_t> body,
                         std::vector<uint8_t> payload, uint64_t sequence) {
  wire::Header header{.type = type, .payload_length = payload.size(), .sequence = sequence};
  ep.SendAm(kAmId, wire::Frame(header, std::move(body)), std::move(payload), nullptr);
}

void PeerManager::Send(Peer& peer, wire::MessageType type, std::vector<uint8_t> body,
                       std::vector<uint8_t> payload, uint64_t sequence) {
  if (!peer.ep) return;
  peer.stats.messages_sent++;
  peer.stats.bytes_sent += wire::kHeaderSize + body.size() + payload.size();
  SendOn(*peer.ep, type, std::move(body), std::move(payload), sequence);
}

void PeerManager::Dial(Peer& peer) {
  auto nonce = wire::RandomNonce();
  if (!nonce.ok()) {
    MarkDown(peer, std::string(nonce.status().message()));
    return;
  }
  const uint64_t id = next_connection_id_++;
  auto ep = ucx::Endpoint::Connect(
      control_, peer.address, [this, id](const absl::Status& st) { OnConnectionError(id, st); });
  if (!ep.ok()) {
    MarkDown(peer, std::string(ep.status().message()));
    return;
  }
  peer.ep = *std::move(ep);
  peer.connection_id = id;
  peer.state = PeerState::kConnecting;
  peer.since = peer.connect_started = absl::Now();
  peer.handshake = Handshake::kAwaitHello;
  peer.my_nonce = *nonce;
  spdlog::debug("peer {}: dialing {}", peer.name, peer.address_text);
  Send(peer, wire::MessageType::kHello, wire::EncodeHello(MyHello(peer.my_nonce, {})));
}

void PeerManager::OnConnection(ucx::ConnectionRequest request) {
  const uint64_t id = next_connection_id_++;
  auto ep = ucx::Endpoint::Accept(
      control_, request, [this, id](const absl::Status& st) { OnConnectionError(id, st); });
  if (!ep.ok()) {
    // UCX consumed the request, failed or not (it rejects and frees it
    // itself): rejecting it again here crashed in UCX.
    spdlog::warn("peer plane: cannot accept a connection: {}", ep.status().message());
    return;
  }
  unbound_.push_back({*std::move(ep), id, absl::Now()});
}

void PeerManager::OnConnectionError(uint64_t id, const absl::Status& status) {
  for (auto& [name, peer] : peers_) {
    if ((peer.ep && peer.connection_id == id) || (peer.data_ep && peer.data_connection_id == id)) {
      MarkDown(peer, std::string(status.message()));
      return;
    }
  }
  // An unbound connection broke before its hello: the tick sweeps the slot.
  for (Unbound& u : unbound_) {
    if (u.connection_id == id) u.ep.reset();
  }
}

PeerManager::Peer* PeerManager::FindByEndpoint(ucx::EndpointId ep) {
  for (auto& [name, peer] : peers_) {
    if ((peer.ep && peer.ep->id() == ep) ||
        (peer.data_in != ucx::EndpointId::kNone && peer.data_in == ep)) {
      return &peer;
    }
  }
  return nullptr;
}

void PeerManager::OnMessage(ucx::AmMessage& message) {
  // Its endpoint closed before it was handled (ucx::Worker::ForgetEndpoint).
  if (message.from == ucx::EndpointId::kNone) return;
  auto decoded = wire::Decode(message.header, message.data_length());
  if (MustPull(message, decoded)) {
    PullThenHandle(message, alive_, "peer plane", [this](ucx::AmMessage& m) { OnMessage(m); });
    return;
  }
  Peer* peer = FindByEndpoint(message.from);
  if (peer == nullptr && decoded.ok() && decoded->header.type == wire::MessageType::kDataBind) {
    OnDataBind(message.from, decoded->body);
    return;
  }
  if (peer == nullptr) {
    auto it = std::find_if(unbound_.begin(), unbound_.end(),
                           [&](const Unbound& u) { return u.ep && u.ep->id() == message.from; });
    // From a connection already dropped, or refused and waiting for its
    // dialer to close it.
    if (it == unbound_.end() || it->refused) return;
    const size_t index = static_cast<size_t>(it - unbound_.begin());
    if (!decoded.ok()) {
      RefuseUnbound(index, std::string(decoded.status().message()));
      return;
    }
    if (decoded->header.type != wire::MessageType::kHello) {
      RefuseUnbound(
          index, absl::StrCat("expected hello, got ", wire::MessageTypeName(decoded->header.type)));
      return;
    }
    auto hello = wire::DecodeHello(decoded->body);
    if (!hello.ok()) {
      RefuseUnbound(index, absl::StrCat("malformed hello: ", hello.status().message()));
      return;
    }
    OnHelloFromUnbound(index, *hello);
    return;
  }
  if (!decoded.ok()) {
    MarkDown(*peer, absl::StrCat("protocol error: ", decoded.status().message()));
    return;
  }
  peer->stats.messages_received++;
  peer->stats.bytes_received += message.header.size() + message.data_length();
  peer->heard = true;  // last_heard is set by the next tick (the clock showed in profiles)
  const wire::Header& header = decoded->header;
  switch (header.type) {
    case wire::MessageType::kHello: {
      auto hello = wire::DecodeHello(decoded->body);
      if (!hello.ok() || peer->handshake != Handshake::kAwaitHello) {
        MarkDown(*peer, "unexpected or malformed hello");
        return;
      }
      OnHelloAtDialer(*peer, *hello);
      return;
    }
    case wire::MessageType::kHelloAuth:
      if (peer->handshake != Handshake::kAwaitAuth) {
        MarkDown(*peer, "unexpected hello-auth");
        return;
      }
      OnAuth(*peer, decoded->body);
      return;
    case wire::MessageType::kReject: {
      auto reason = wire::DecodeReject(decoded->body);
      if (reason.ok() &&
          JudgeReject(*reason, peer->on_demand, peer->handshake == Handshake::kAwaitHello) ==
              RejectVerdict::kAwaitTheirs) {
        // Our dial lost to theirs, which comes on its own connection: wait
        // for it (within dead_after, as any handshake).
        spdlog::debug("peer {}: crossed dials; taking theirs", peer->name);
        peer->ep.reset();
        peer->handshake = Handshake::kNone;
        return;
      }
      MarkDown(*peer, absl::StrCat("refused by the peer: ",
                                   reason.ok() ? *reason : std::string("(no reason)")));
      return;
    }
    case wire::MessageType::kPing:
      if (peer->state == PeerState::kUp) {
        Send(*peer, wire::MessageType::kPong, {},
             std::vector<uint8_t>(message.data.begin(), message.data.end()), header.sequence);
      }
      return;
    case wire::MessageType::kPong:
      OnPong(*peer, header);
      return;
    case wire::MessageType::kDataBind:
      return;  // a repeat on a bound endpoint
    case wire::MessageType::kData:
    case wire::MessageType::kDataAck:
    case wire::MessageType::kDataAcks:
    case wire::MessageType::kDataCancel:
    case wire::MessageType::kDataHandleAnswer:
    case wire::MessageType::kDataHandleClosed:
      if (peer->state != PeerState::kUp) {
        if (peer->handshake == Handshake::kAwaitAuth && peer->data_in == message.from &&
            peer->early.size() < kMaxEarlyFrames) {
          peer->early.push_back(std::move(message));  // see OnDataBind
          return;
        }
        MarkDown(*peer, absl::StrCat("protocol error: ", wire::MessageTypeName(header.type),
                                     " before the handshake finished"));
        return;
      }
      ++peer->data_frames;
      if (handlers_.on_data) handlers_.on_data(peer->name, header, decoded->body, message);
      return;
    case wire::MessageType::kIdleClose:
      OnIdleClose(*peer, decoded->body);
      return;
  }
}

void PeerManager::MarkUp(Peer& peer) {
  peer.handshake = Handshake::kDone;
  peer.state = PeerState::kUp;
  ++peer.stats.times_up;
  peer.since = peer.last_heard = peer.last_ping_sent = peer.quiet_since = absl::Now();
  peer.frames_seen = DataFrames(peer);
  peer.backoff = absl::Milliseconds(options_.config.reconnect_min_ms);
  peer.stats.failed_dials = 0;
  peer.failure_said.clear();
  spdlog::info("peer {} up ({}, {})", peer.name, peer.address_text,
               peer.dialer ? "dialed" : "accepted");
  ConnectData(peer);
  FanOutUp(peer);
  // Frames that came before: decoded (and counted) once already.
  std::vector<ucx::AmMessage> early = std::exchange(peer.early, {});
  for (ucx::AmMessage& message : early) {
    if (peer.state != PeerState::kUp) break;  // one of them was a protocol error
    auto decoded = wire::Decode(message.header, message.data_length());
    if (decoded.ok() && handlers_.on_data) {
      handlers_.on_data(peer.name, decoded->header, decoded->body, message);
    }
  }
  if (peer.state == PeerState::kUp && handlers_.on_up) handlers_.on_up(peer.name);
  for (auto& [size, done] : std::exchange(peer.pings_waiting, {})) {
    if (peer.state != PeerState::kUp) {
      done(absl::UnavailableError(absl::StrCat("peer ", peer.name, " is down")));
    } else {
      SendPing(peer, size, std::move(done));
    }
  }
}

size_t PeerManager::LinkedShards(const Peer& peer) const {
  // Members connected on first use may close for idleness and carry their
  // waiting sends over to the next connection: shard 0 alone does that.
  if (!fanout_.up || peer.on_demand) return 0;
  return std::min(options_.shard_addresses.size(), peer.their_shard_addresses.size());
}

void PeerManager::FanOutUp(const Peer& peer) {
  const size_t shards = LinkedShards(peer);
  for (size_t k = 1; k <= shards; ++k) {
    fanout_.up(k, ShardLinkInfo{.node = peer.name,
                                .connection = peer.connection_id,
                                .address = peer.their_shard_addresses[k - 1],
                                .their_nonce = peer.their_nonce,
                                .my_nonce = peer.my_nonce,
                                .takes_cuda = peer.stats.peer_cuda_memory,
                                .traffic = peer.shard_traffic});
  }
}

void PeerManager::MarkDown(Peer& peer, const std::string& reason) {
  const bool was_up = peer.state == PeerState::kUp;
  // A connection closed for idleness ends however it ends (the other side's
  // close is a connection error here): no failure, and said so.
  const std::string why =
      peer.closing
          ? absl::StrCat("idle for ", Ms(absl::Milliseconds(options_.config.idle_close_ms)),
                         ": closed by agreement")
          : reason;
  const bool idle = peer.closing;
  peer.closing = false;
  if (idle) {
    spdlog::info("peer {}: {}", peer.name, why);
  } else if (was_up) {
    spdlog::warn("peer {} down: {}", peer.name, why);
  } else {
    SayDialFailed(peer, why);
  }
  peer.stats.last_error = why;
  // Closed once the peer is marked down: a force close completes the
  // requests in flight on the spot, and their callbacks (a served RMA
  // request's) may send, which must find the peer down, not its endpoints
  // half gone.
  std::unique_ptr<ucx::Endpoint> ep = std::move(peer.ep);
  std::unique_ptr<ucx::Endpoint> data_ep = std::move(peer.data_ep);
  // Connecting without a connection of its own is a dial that lost a
  // crossing, waiting for the peer's: the sends waiting for it must hear
  // that it failed too.
  const bool had_connection = ep != nullptr || peer.state == PeerState::kConnecting;
  peer.data_in = ucx::EndpointId::kNone;
  peer.early.clear();
  peer.handshake = Handshake::kNone;
  for (auto& [seq, waiter] : peer.pings) {
    if (waiter.done) {
      waiter.done(absl::UnavailableError(absl::StrCat("peer ", peer.name, " is down: ", why)));
    }
  }
  peer.pings.clear();
  if (!idle) {  // after an idle close, they go on the next connection (below)
    for (auto& [size, done] : std::exchange(peer.pings_waiting, {})) {
      done(absl::UnavailableError(absl::StrCat("peer ", peer.name, " is down: ", why)));
    }
  }
  const absl::Time now = absl::Now();
  if (peer.state != PeerState::kDown) peer.since = now;
  peer.state = PeerState::kDown;
  data_ep.reset();
  ep.reset();
  peer.next_attempt = now + peer.backoff;
  peer.backoff = std::min(peer.backoff * 2, absl::Milliseconds(options_.config.reconnect_max_ms));
  if (had_connection && handlers_.on_down) handlers_.on_down(peer.name, why);
  if (was_up && fanout_.down) fanout_.down(peer.name, why);
  if (!peer.pings_waiting.empty() && peer.state == PeerState::kDown) Dial(peer);
}

void PeerManager::SayDialFailed(Peer& peer, const std::string& why) {
  // A peer that stays unreachable is redialed every reconnect_max_ms. Its
  // failures are said when their reason changes (a lost connection, however
  // UCX words it, being one reason), else as a reminder a minute apart.
  constexpr absl::Duration kReminder = absl::Minutes(1);
  constexpr absl::string_view kLost = "connection lost";
  const absl::Time now = absl::Now();
  const std::string reason = absl::StartsWith(why, kLost) ? std::string(kLost) : why;
  ++peer.stats.failed_dials;
  if (reason != peer.failure_said) {
    spdlog::info("peer {}: connection failed: {}", peer.name, why);
  } else if (now - peer.failure_said_at >= kReminder) {
    spdlog::info("peer {}: still unreachable after {} dials: {}", peer.name,
                 peer.stats.failed_dials, why);
  } else {
    spdlog::debug("peer {}: connection failed again: {}", peer.name, why);
    return;
  }
  peer.failure_said = reason;
  peer.failure_said_at = now;
}

void PeerManager::OnPong(Peer& peer, const wire::Header& header) {
  auto it = peer.pings.find(header.sequence);
  if (it == peer.pings.end()) return;  // a late answer to a ping already given up
  const absl::Duration rtt = absl::Now() - it->second.sent;
  peer.stats.last_rtt = rtt;
  if (it->second.done) it->second.done(rtt);
  peer.pings.erase(it);
}

void PeerManager::PingFromLoop(const std::string& node, size_t size, PingDone done) {
  AXON_DCHECK_ON_LOOP();
  if (auto st = CheckUpFromLoop(node); !st.ok()) {
    if (ConnectFromLoop(node)) {  // a member connected on first use: a ping is a use
      FindPeer(node)->pings_waiting.emplace_back(size, std::move(done));
      return;
    }
    done(st);
    return;
  }
  SendPing(peers_.find(node)->second, size, std::move(done));
}

void PeerManager::SendPing(Peer& peer, size_t size, PingDone done) {
  const uint64_t seq = peer.next_sequence++;
  const absl::Time now = absl::Now();
  peer.pings[seq] = {now, now + absl::Milliseconds(options_.config.dead_after_ms), std::move(done)};
  Send(peer, wire::MessageType::kPing, {}, std::vector<uint8_t>(size, 0xa5), seq);
}

void PeerManager::TickFromLoop() {
  AXON_DCHECK_ON_LOOP();
  const absl::Time now = absl::Now();
  const absl::Duration dead_after = absl::Milliseconds(options_.config.dead_after_ms);
  const absl::Duration keepalive = absl::Milliseconds(options_.config.keepalive_ms);
  unbound_.erase(std::remove_if(unbound_.begin(), unbound_.end(),
                                [&](const Unbound& u) {
                                  return SweepUnbound(u.ep != nullptr, u.since, now, dead_after);
                                }),
                 unbound_.end());
  for (auto& [name, peer] : peers_) {
    if (std::exchange(peer.heard, false)) peer.last_heard = now;
    for (auto it = peer.pings.begin(); it != peer.pings.end();) {
      if (now > it->second.deadline) {
        if (it->second.done) {
          it->second.done(absl::DeadlineExceededError(
              absl::StrCat("no answer from ", name, " within ", Ms(dead_after))));
        }
        it = peer.pings.erase(it);
      } else {
        ++it;
      }
    }
    switch (peer.state) {
      case PeerState::kConnecting:
        if (now - peer.connect_started > dead_after) {
          MarkDown(peer, absl::StrCat("handshake did not finish within ", Ms(dead_after)));
        }
        break;
      case PeerState::kUp:
        CheckIdle(peer, now);
        if (peer.state != PeerState::kUp) break;
        if (now >= peer.leave_by) {
          peer.member = false;
          peer.leave_by = absl::InfiniteFuture();
          MarkDown(peer, "left the cluster (its etcd record is gone)");
        } else if (now - peer.last_heard > dead_after) {
          MarkDown(peer, absl::StrCat("nothing heard for ", Ms(now - peer.last_heard)));
        } else if (now - peer.last_ping_sent >= keepalive) {
          peer.last_ping_sent = now;
          const uint64_t seq = peer.next_sequence++;
          peer.pings[seq] = {now, now + dead_after, nullptr};
          Send(peer, wire::MessageType::kPing, {}, {}, seq);
        }
        break;
      case PeerState::kDown:
        if (peer.leave_by != absl::InfiniteFuture()) {  // went down while leaving
          peer.member = false;
          peer.leave_by = absl::InfiniteFuture();
        }
        // Members found through etcd are dialed when a send needs them.
        if (peer.member && !peer.on_demand && peer.dialer && now >= peer.next_attempt) {
          Dial(peer);
        }
        break;
    }
  }
  if (handlers_.on_tick) handlers_.on_tick();
  if (fanout_.tick) fanout_.tick();
}

std::vector<PeerSnapshot> PeerManager::SnapshotFromLoop() const {
  AXON_DCHECK_ON_LOOP();
  std::vector<PeerSnapshot> out;
  for (const auto& [name, peer] : peers_) {
    if (!peer.member && peer.state == PeerState::kDown) continue;  // left the cluster
    PeerSnapshot s = peer.stats;
    s.name = name;
    s.address = peer.address_text;
    s.state = peer.state;
    s.since = peer.since;
    s.messages_sent += peer.shard_traffic->frames_sent.load();
    s.messages_received += peer.shard_traffic->frames_received.load();
    s.bytes_sent += peer.shard_traffic->bytes_sent.load();
    s.bytes_received += peer.shard_traffic->bytes_received.load();
    s.shard_frames = peer.shard_traffic->frames();
    if (peer.state == PeerState::kUp) s.shard_links = static_cast<uint32_t>(LinkedShards(peer));
    if (peer.ep && peer.state == PeerState::kUp) {
      // The lanes the tensors take: the data endpoint's, when there is one.
      s.transports = (peer.data_ep ? peer.data_ep : peer.ep)->Transports();
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace axon::daemon
