// PeerManager is the peer plane: the UCX listener, one connection per
// configured peer, the handshake (name, version, capabilities, HMAC proof),
// keepalives that notice a dead or frozen peer, reconnection with exponential
// backoff, and pings. It lives on the UCX thread: every method ends in
// FromLoop. Of each pair of daemons, the one whose name sorts first dials.
// The data endpoints and sending on them are in data_path.cc; members found
// through etcd and idle close in members.cc; the handshake in handshake.cc,
// after the rules for offered and crossed connections in dial_rules.h.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/last_entry.h"
#include "common/net_address.h"
#include "common/wire/handshake.h"
#include "common/wire/header.h"
#include "daemon/config/config.h"
#include "daemon/peer/peer_plane.h"
#include "daemon/peer/shard_link.h"
#include "daemon/ucx/endpoint.h"
#include "daemon/ucx/listener.h"
#include "daemon/ucx/worker.h"

namespace axon::daemon {

struct PeerOptions {
  std::string node_name;
  Config::Peers config;
  uint64_t capabilities = 0;            // wire::kCap* of this node
  std::vector<std::string> transports;  // this node's UCX transports
  // Connect a data endpoint to each peer's worker address once up (shared
  // memory and CUDA IPC become possible on one host).
  bool data_endpoints = true;
  // The worker addresses of this daemon's engine shards 1..N-1, sent in
  // hellos (engine.shard_links); empty: shard 0 carries every message.
  std::vector<std::vector<uint8_t>> shard_addresses;
};

enum class PeerState { kConnecting, kUp, kDown };
const char* PeerStateName(PeerState state);

struct PeerSnapshot {
  std::string name;
  std::string address;
  PeerState state = PeerState::kDown;
  absl::Time since;
  std::vector<std::string> transports;
  uint64_t messages_sent = 0, messages_received = 0, bytes_sent = 0, bytes_received = 0;
  absl::Duration last_rtt;
  std::string last_error;
  bool dialer = false;
  bool peer_cuda_memory = false;
  uint64_t times_up = 0;      // the connection came up (the first time included)
  uint64_t failed_dials = 0;  // since the peer was last up
  uint32_t shard_links = 0;   // shards with links of their own to it, while up
  uint64_t shard_frames = 0;  // frames they carried (in messages_*)
};

class PeerManager final : public PeerPlane {
 public:
  using PingDone = std::function<void(absl::StatusOr<absl::Duration>)>;

  // Listens on options.config.listen and starts dialing. `control` holds
  // the listener and the connections made through it; `data` the data
  // endpoints (ucx::Loop's two workers; the same worker for both works too).
  static absl::StatusOr<std::unique_ptr<PeerManager>> StartFromLoop(ucx::Worker& control,
                                                                    ucx::Worker& data,
                                                                    PeerOptions options);
  ~PeerManager() override;

  // Called periodically: keepalives, dead-peer detection, reconnects.
  void TickFromLoop();
  // How often TickFromLoop should run.
  absl::Duration tick_interval() const;

  std::vector<PeerSnapshot> SnapshotFromLoop() const;
  // Membership (peers.discovery: etcd). A member joined, or a known one came
  // back as a new incarnation or at a new address: it is dialed like a
  // static peer. A connection to an earlier incarnation is closed first (its
  // work fails UNAVAILABLE): nothing of it is used.
  void MemberJoinedFromLoop(const std::string& name, const std::string& address,
                            uint64_t incarnation);
  // Its record went. Not connected: forgotten at once. Connected and still
  // answering: kept for `grace` (etcd may have blinked; the record comes
  // back with the same incarnation), then closed.
  void MemberLeftFromLoop(const std::string& name, absl::Duration grace);

  // One round trip to `node` with `size` payload bytes.
  void PingFromLoop(const std::string& node, size_t size, PingDone done);
  const SocketAddress& listen_address() const { return listener_->address(); }

  // PeerPlane: the message path on top of the peer plane. on_tick runs at
  // the end of every TickFromLoop; PeerSharesGpusFromLoop holds once the
  // node's data endpoint has a cuda_ipc lane (UCX found it on this host,
  // with GPUs both can reach); frames go on the data endpoint.
  void SetHandlersFromLoop(Handlers handlers) override;
  absl::Status CheckUpFromLoop(const std::string& node) override;
  bool ConnectFromLoop(const std::string& node) override;
  void DropFromLoop(const std::string& node, const std::string& why) override;
  // The same, if `connection` is still the peer's (a shard's link failed).
  void DropFromLoopIf(const std::string& node, uint64_t connection, const std::string& why);
  // Where peers coming up and going down, and ticks, are told to the other
  // engine shards (EngineShards); empty functions: nowhere.
  void SetShardFanoutFromLoop(ShardFanout fanout);
  bool PeerTakesCudaFromLoop(const std::string& node) const override;
  bool PeerSharesGpusFromLoop(const std::string& node) override;
  absl::StatusOr<std::unique_ptr<ucx::MemoryHandle>> RegisterFromLoop(void* address,
                                                                      size_t length) override;
  absl::StatusOr<std::unique_ptr<ucx::RemoteKey>> UnpackKeyFromLoop(
      const std::string& node, absl::Span<const uint8_t> packed) override;
  void RmaFromLoop(const std::string& node, bool put, void* local, size_t length, uint64_t address,
                   const ucx::RemoteKey& key, ucx::Endpoint::SendDone done) override;
  void FlushFromLoop(const std::string& node, ucx::Endpoint::SendDone done) override;
  absl::Status SendFrameFromLoop(const std::string& node, wire::MessageType type, FrameWriter frame,
                                 ucx::Parts&& parts, ucx::Keepalives&& keep,
                                 ucx::AmProtocol protocol, uint64_t sequence,
                                 ucx::MemoryKind memory = ucx::MemoryKind::kHost) override;

 private:
  enum class Handshake { kNone, kAwaitHello, kAwaitAuth, kDone };
  struct PingWaiter {
    absl::Time sent;
    absl::Time deadline;
    PingDone done;  // empty for keepalives
  };
  struct Peer {
    std::string name;
    SocketAddress address;
    std::string address_text;
    bool dialer = false;
    // Static peers are members for good; etcd's come and go, and are
    // connected on first use (ConnectFromLoop), not at once.
    bool member = true;
    bool on_demand = false;
    uint64_t incarnation = 0;                      // etcd's members'
    absl::Time leave_by = absl::InfiniteFuture();  // record gone, connection kept until
    PeerState state = PeerState::kDown;
    absl::Time since;
    std::unique_ptr<ucx::Endpoint> ep;
    uint64_t connection_id = 0;  // of `ep`
    // The message path's own connection: data_ep sends to the peer's worker
    // address; data_in is the endpoint the peer's data_ep arrives on here.
    std::vector<uint8_t> their_address;
    std::vector<std::vector<uint8_t>> their_shard_addresses;
    // What the other shards moved to and from it (ShardPeers).
    std::shared_ptr<ShardTraffic> shard_traffic = std::make_shared<ShardTraffic>();
    std::unique_ptr<ucx::Endpoint> data_ep;
    uint64_t data_connection_id = 0;
    uint64_t shares_gpus_on = 0;  // the data connection found to have a cuda_ipc lane
    ucx::EndpointId data_in = ucx::EndpointId::kNone;
    // Frames that came on data_in before this node finished the handshake,
    // handled in order once it has (MarkUp); dropped by MarkDown.
    std::vector<ucx::AmMessage> early;
    Handshake handshake = Handshake::kNone;
    wire::Nonce my_nonce{}, their_nonce{};
    absl::Time connect_started, last_heard, last_ping_sent, next_attempt;
    bool heard = false;  // something came since the last tick
    absl::Duration backoff;
    // The last failed dial said (stats.failed_dials counts them): its
    // reason and when.
    std::string failure_said;
    absl::Time failure_said_at;
    uint64_t next_sequence = 1;
    std::map<uint64_t, PingWaiter> pings;
    // Idle close (on-demand peers, peers.idle_close_ms): message-path frames
    // either way, those the last tick saw, and since when none came or went.
    uint64_t data_frames = 0, frames_seen = 0;
    absl::Time quiet_since;
    // Asked (or agreed) to close for idleness: new sends wait (they go on the
    // next connection), and the connection's end is no failure.
    bool closing = false;
    absl::Time closing_since;
    // Pings waiting for a connection made on first use: sent once it is up.
    std::vector<std::pair<size_t, PingDone>> pings_waiting;
    PeerSnapshot stats;  // counters, last_rtt, last_error, capabilities
  };
  // An accepted connection whose Hello has not arrived yet.
  struct Unbound {
    std::unique_ptr<ucx::Endpoint> ep;
    uint64_t connection_id = 0;
    absl::Time since;
    bool refused = false;  // a reject was sent; the dialer closes it
  };

  static constexpr uint16_t kAmId = kPeerAmId;

  PeerManager(ucx::Worker& control, ucx::Worker& data, PeerOptions options);

  void OnConnection(ucx::ConnectionRequest request);
  // UCX reported connection `id` broken.
  void OnConnectionError(uint64_t id, const absl::Status& status);
  void OnMessage(ucx::AmMessage& message);
  void OnHelloFromUnbound(size_t index, const wire::Hello& hello);
  void OnHelloAtDialer(Peer& peer, const wire::Hello& hello);
  void OnAuth(Peer& peer, absl::Span<const uint8_t> body);
  void OnPong(Peer& peer, const wire::Header& header);
  void SendPing(Peer& peer, size_t size, PingDone done);
  void Dial(Peer& peer);
  // A new peer entry, dialed at the next tick if this node dials it.
  Peer& AddPeer(const std::string& name, const std::string& address);
  void MarkUp(Peer& peer);
  // Tells the other engine shards of `peer`, up (ShardFanout).
  void FanOutUp(const Peer& peer);
  // The shards 1..k that link to `peer`'s (k; 0: none).
  size_t LinkedShards(const Peer& peer) const;
  // Message-path frames to and from `peer`, on every shard.
  static uint64_t DataFrames(const Peer& peer) {
    return peer.data_frames + peer.shard_traffic->frames();
  }
  // Connects and binds the peer's data endpoint (after MarkUp).
  void ConnectData(Peer& peer);
  // A DataBind on an endpoint we do not know yet.
  void OnDataBind(ucx::EndpointId from, absl::Span<const uint8_t> body);
  void MarkDown(Peer& peer, const std::string& why);
  // Logs a dial of `peer` that failed for `why`, without a line per redial.
  void SayDialFailed(Peer& peer, const std::string& why);
  // Idle close: the ticker's side (of each pair, the name that sorts first
  // asks), and the answers.
  void CheckIdle(Peer& peer, absl::Time now);
  void OnIdleClose(Peer& peer, absl::Span<const uint8_t> body);
  // The close did not happen: sends waiting for it go on this connection.
  void StayOpen(Peer& peer);
  void Send(Peer& peer, wire::MessageType type, std::vector<uint8_t> body,
            std::vector<uint8_t> payload = {}, uint64_t sequence = 0);
  void SendOn(ucx::Endpoint& ep, wire::MessageType type, std::vector<uint8_t> body,
              std::vector<uint8_t> payload, uint64_t sequence);
  // Refuses an unbound connection: tells it why, logs, and drops it.
  void RefuseUnbound(size_t index, const std::string& why);
  wire::Hello MyHello(const wire::Nonce& nonce, std::vector<uint8_t> proof) const;
  Peer* FindByEndpoint(ucx::EndpointId ep);
  // peers_[node] if it is there (the last one found first), else null.
  Peer* FindPeer(const std::string& node);
  // The connection frames to and from `node` use, if it is up.
  ucx::Endpoint* DataEndpoint(const std::string& node);
  // Why `node` has no endpoint to use: CheckUpFromLoop's reason, or
  // UNAVAILABLE while it is being closed.
  absl::Status NotConnected(const std::string& node);

  ucx::Worker& control_;
  ucx::Worker& data_;
  PeerOptions options_;
  std::unique_ptr<ucx::Listener> listener_;
  std::map<std::string, Peer> peers_;  // entries stay put, never erased
  // For FindPeer: most messages go to the peer of the one before.
  LastEntry<std::map<std::string, Peer>> last_peer_;
  std::vector<Unbound> unbound_;
  uint64_t next_connection_id_ = 1;
  std::vector<uint8_t> worker_address_;  // data_'s, sent in hellos
  std::vector<uint8_t> frame_;           // SendDataFromLoop's, kept for the next frame
  Handlers handlers_;
  ShardFanout fanout_;
  // False once destroyed: UCX completions that outlive it check it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace axon::daemon
