#include "daemon/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/net_address.h"
#include "common/secrets.h"
#include "common/version.h"
#include "common/wire/header.h"
#include "daemon/cuda/mps.h"
#include "daemon/membership/membership.h"
#include "daemon/metrics/collect.h"

namespace axon::daemon {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Daemon::Daemon(ConfigSources sources) : sources_(std::move(sources)) {}

Daemon::~Daemon() {
  Shutdown("daemon destroyed");
  // Leaves etcd first, so the others see this node go before its connections
  // close. state_.membership is left as it is: the services stopped in
  // Shutdown, and a write here would look to TSan like a race with their
  // last read (gRPC's own ordering of its threads is invisible to it); the
  // destructor's first lock orders it after their last one.
  membership_.reset();
  // Links of shards that never started (a failed start): on their loops.
  for (size_t k = 0; k < shard_peers_.size() && k < shard_loops_.size(); ++k) {
    (void)shard_loops_[k]->Call<bool>(
        [peers = std::move(shard_peers_[k])]() mutable {
          peers.reset();
          return true;
        },
        absl::Seconds(30));
  }
  if (ucx_) {
    ucx_->Post([this] { (void)ucx_->SetTickerFromLoop(absl::ZeroDuration(), nullptr); });
    // The engines serve rings, reading the session manager, until they stop:
    // this waits for them (TSan caught the UCX thread reading a freed manager
    // at shutdown). Shard 0's remote path hooks into the peer plane: it goes
    // first.
    state_.engine = nullptr;
    shards_.reset();
    // The peer plane's endpoints and listener die on the UCX thread, before
    // its workers.
    ucx_->Post([peers = std::move(peers_)]() mutable { peers.reset(); });
    if (auto st = ucx_->Ping(absl::Seconds(30)); !st.ok()) {
      spdlog::error("shutdown: the UCX thread did not stop serving: {}", st.message());
    }
  }
  // Sessions hold asio objects; drop them before the io_context goes.
  session_server_.reset();
  sessions_.reset();
  windows_.reset();
}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(Config config, ConfigSources sources) {
  std::unique_ptr<Daemon> d(new Daemon(std::move(sources)));
  // Signals are taken from the start: one that comes while axond starts
  // waits for Run (asio queues it) instead of killing a daemon whose socket
  // already exists. A test sending SIGINT as soon as the socket appeared
  // caught the daemon before Run.
  d->signals_.add(SIGTERM);
  d->signals_.add(SIGINT);
  d->signals_.add(SIGHUP);
  d->state_.config = std::move(config);
  d->state_.config_path = d->sources_.path;
  d->state_.start_time = absl::Now();
  if (auto uid = MpsServerOfAnotherUser("/proc", ::geteuid())) {
    spdlog::warn(
        "an MPS server runs for uid {} on this host: CUDA makes axond (uid {}) wait until that "
        "user's GPU processes have all exited, here and at its first CUDA call (README: GPU "
        "sharing)",
        *uid, ::geteuid());
  }
  d->state_.cuda = QueryCudaInfo();
  const Config& cfg = d->state_.config;

  // Several engine shards share one UCX context, each with its own workers.
  absl::StatusOr<std::unique_ptr<ucx::Loop>> ucx;
  if (EngineShards::CountFor(cfg.engine.shards) > 1) {
    auto context =
        ucx::Context::Create({.transports = cfg.ucx.transports, .shared_by_threads = true});
    if (context.ok()) {
      d->shared_context_ = *std::move(context);
      ucx = ucx::Loop::StartOn(d->shared_context_);
    } else {
      ucx = context.status();
    }
  } else {
    // Shared by threads all the same: regions registered for RMA
    // (WindowRma) are released by whichever thread lets go of them last.
    ucx = ucx::Loop::Start({.transports = cfg.ucx.transports, .shared_by_threads = true});
  }
  if (!ucx.ok()) {
    return absl::Status(ucx.status().code(),
                        absl::StrCat("cannot start UCX: ", ucx.status().message()));
  }
  d->ucx_ = *std::move(ucx);
  d->state_.ucx = d->ucx_.get();
  const ucx::ContextInfo& info = d->ucx_->info();
  spdlog::info("UCX {}: transports {}; CUDA memory {}", info.version,
               absl::StrJoin(info.transports, ","),
               info.cuda_memory ? "supported" : "not supported");
  spdlog::info("CUDA: {}", d->state_.cuda.device_count > 0
                               ? absl::StrCat(d->state_.cuda.device_count, " device(s)")
                               : d->state_.cuda.detail);

  if (cfg.gpu.remote_path == "direct" && !info.cuda_memory) {
    return absl::FailedPreconditionError(absl::StrCat(
        "gpu.remote_path is direct, but UCX ", info.version,
        " cannot move CUDA memory here (memory types: ", absl::StrJoin(info.memory_types, ","),
        "); set gpu.remote_path to auto or staging"));
  }
  d->state_.gpu_direct = cfg.gpu.remote_path != "staging" && info.cuda_memory;
  spdlog::info("GPU buffers to other nodes: {}",
               d->state_.gpu_direct
                   ? "direct (device bounce buffers moved by UCX) where the peer's UCX takes CUDA "
                     "memory, else staged through pinned host memory"
                   : "staged through pinned host memory");

  if (auto st = d->StartShardLoops(); !st.ok()) return st;
  if (auto st = d->StartPeers(); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("cannot start the peer plane: ", st.message()));
  }

  d->fds_ =
      std::make_unique<FdBudget>(FdBudget::Raise(static_cast<uint64_t>(cfg.sessions.fd_reserve)));
  d->sessions_ = std::make_unique<SessionManager>(
      d->io_,
      SessionLimits{
          .max_registered_bytes = static_cast<uint64_t>(cfg.sessions.max_registered_bytes),
          .max_regions = static_cast<uint64_t>(cfg.sessions.max_regions),
          .max_sessions = static_cast<uint64_t>(cfg.sessions.max_sessions),
          .max_per_uid = static_cast<uint64_t>(cfg.sessions.max_per_uid),
          .max_per_process = static_cast<uint64_t>(cfg.sessions.max_per_process),
          .max_endpoints = static_cast<uint64_t>(cfg.sessions.max_endpoints),
          .socket_timeout = absl::Milliseconds(cfg.sessions.socket_timeout_ms)},
      d->fds_.get());
  d->state_.sessions = d->sessions_.get();
  d->windows_ =
      std::make_unique<WindowTable>(cfg.node.name, static_cast<uint64_t>(cfg.sessions.max_windows));
  d->sessions_->SetWindows(d->windows_.get());
  if (auto st = d->StartRingEngine(); !st.ok()) return st;
  // Before the services: they read state_.membership from their threads.
  if (auto st = d->StartMembership(); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("cannot start membership: ", st.message()));
  }
  d->admin_service_ = std::make_unique<rpc::AdminService>(d->state_);
  d->control_service_ = std::make_unique<rpc::ControlService>(d->state_);
  auto server = rpc::ControlServer::Start(
      {.socket_path = cfg.control.socket,
       .socket_mode = cfg.control.socket_mode,
       .socket_gid = cfg.control.socket_gid,
       .fds = d->fds_.get()},
      AccessPolicy(::geteuid(), cfg.control.allowed_uids, cfg.control.allowed_gids),
      {d->admin_service_.get(), d->control_service_.get()}, d->io_);
  if (!server.ok()) {
    return absl::Status(server.status().code(), absl::StrCat("cannot serve the control socket: ",
                                                             server.status().message()));
  }
  d->control_server_ = *std::move(server);
  d->state_.control_server = d->control_server_.get();

  ListenOptions session_listen{.mode = cfg.control.socket_mode};
  if (cfg.control.socket_gid) session_listen.gid = *cfg.control.socket_gid;
  auto session_server = SessionSocketServer::Start(
      SessionSocketPath(cfg), session_listen,
      AccessPolicy(::geteuid(), cfg.control.allowed_uids, cfg.control.allowed_gids), *d->sessions_,
      [shards = d->shards_.get(), sessions = d->sessions_.get()](
          uint64_t session, std::unique_ptr<HostRegion> memory, UniqueFd daemon_bell,
          UniqueFd client_bell) -> absl::Status {
        auto added = shards->AddSession(
            session,
            SessionRings{std::move(memory), std::move(daemon_bell), std::move(client_bell)},
            absl::Seconds(5));
        if (!added.ok()) return added;
        // A session closed meanwhile (Detach on a gRPC thread) had its removal
        // posted before the rings were added: remove them again.
        if (!sessions->IsOpen(session)) {
          shards->RemoveSession(session);
          return absl::NotFoundError("the session closed while its rings were set up");
        }
        return added;
      },
      d->io_, d->fds_.get());
  if (!session_server.ok()) {
    return absl::Status(
        session_server.status().code(),
        absl::StrCat("cannot serve the session socket: ", session_server.status().message()));
  }
  d->session_server_ = *std::move(session_server);
  if (auto st = d->StartMetrics(); !st.ok()) return st;
  return d;
}

absl::Status Daemon::StartMembership() {
  const Config& cfg = state_.config;
  if (cfg.peers.discovery != "etcd") return absl::OkStatus();
  std::string address = cfg.peers.advertise;
  if (address.empty()) {
    address = state_.peer_listen_address;
    auto parsed = ParseSocketAddress(address);
    if (parsed.ok() && parsed->IsUnspecified()) {
      return absl::InvalidArgumentError(
          absl::StrCat("peers.listen is ", cfg.peers.listen,
                       ", which others cannot dial: set peers.advertise to this node's address"));
    }
  }
  uint64_t incarnation = 0;
  if (auto st =
          FillRandom(absl::MakeSpan(reinterpret_cast<uint8_t*>(&incarnation), sizeof(incarnation)));
      !st.ok()) {
    return st;
  }
  MembershipOptions options{.etcd = {.endpoints = cfg.etcd.endpoints,
                                     .ca_file = cfg.etcd.ca_file,
                                     .cert_file = cfg.etcd.cert_file,
                                     .key_file = cfg.etcd.key_file,
                                     .user = cfg.etcd.user,
                                     .password = cfg.etcd.password},
                            .prefix = cfg.etcd.prefix,
                            .ttl = absl::Milliseconds(cfg.etcd.lease_ttl_ms),
                            .retry_min = absl::Milliseconds(cfg.etcd.retry_min_ms),
                            .retry_max = absl::Milliseconds(cfg.etcd.retry_max_ms),
                            .self = {.name = cfg.node.name,
                                     .address = address,
                                     .wire_version = wire::kVersion,
                                     .capabilities = state_.gpu_direct ? wire::kCapCudaMemory : 0,
                                     .incarnation = incarnation | 1,  // never 0, which means none
                                     .started = state_.start_time,
                                     .transports = ucx_->info().transports,
                                     .version = kVersion}};
  const absl::Duration grace = options.ttl;
  ucx::Loop* loop = ucx_.get();
  PeerManager* peers = peers_.get();
  auto started = Membership::Start(
      std::move(options), [loop, peers, grace](const MemberTable::Change& change) {
        const Member& m = change.member;
        if (change.kind == MemberTable::Change::Kind::kLeft) {
          loop->Post([peers, name = m.name, grace] { peers->MemberLeftFromLoop(name, grace); });
          return;
        }
        if (m.wire_version != wire::kVersion) {
          spdlog::warn("membership: node {} speaks wire version {}, this one {}: not connecting",
                       m.name, m.wire_version, wire::kVersion);
          return;
        }
        loop->Post([peers, name = m.name, address = m.address, incarnation = m.incarnation] {
          peers->MemberJoinedFromLoop(name, address, incarnation);
        });
      });
  if (!started.ok()) return started.status();
  membership_ = *std::move(started);
  state_.membership = membership_.get();
  spdlog::info("membership: etcd at {}, prefix {}, this node's incarnation {:x}",
               absl::StrJoin(cfg.etcd.endpoints, ","), cfg.etcd.prefix,
               membership_->options().self.incarnation);
  return absl::OkStatus();
}

absl::Status Daemon::StartMetrics() {
  const std::string& listen = state_.config.metrics.listen;
  if (listen.empty()) return absl::OkStatus();
  auto server = metrics::MetricsServer::Start(listen, [this] { return metrics::Collect(state_); });
  if (!server.ok()) return server.status();
  metrics_server_ = *std::move(server);
  state_.metrics_address = metrics_server_->address();
  spdlog::info("metrics: http://{}/metrics", state_.metrics_address);
  return absl::OkStatus();
}

absl::Status Daemon::StartShardLoops() {
  const Config& cfg = state_.config;
  const int count = EngineShards::CountFor(cfg.engine.shards);
  const bool links = cfg.engine.remote == "own" && !cfg.peers.listen.empty();
  for (int i = 1; i < count; ++i) {
    auto loop = ucx::Loop::StartOn(shared_context_);
    if (!loop.ok()) {
      return absl::Status(loop.status().code(), absl::StrCat("cannot start engine shard ", i, ": ",
                                                             loop.status().message()));
    }
    shard_loops_.push_back(*std::move(loop));
    if (!links) continue;
    // Listening before the hello names the shard's worker (StartPeers).
    ucx::Loop* raw = shard_loops_.back().get();
    auto peers = raw->Call<absl::StatusOr<std::unique_ptr<ShardPeers>>>(
        [raw, i] { return ShardPeers::StartFromLoop(raw->DataWorkerFromLoop(), i); },
        absl::Seconds(30));
    if (peers.ok() && peers->ok()) {
      shard_peers_.push_back(**std::move(peers));
      continue;
    }
    const absl::Status st = peers.ok() ? peers->status() : peers.status();
    return absl::Status(
        st.code(), absl::StrCat("engine shard ", i, " cannot take links to peers (", st.message(),
                                "); engine.remote: shard0 avoids them"));
  }
  return absl::OkStatus();
}

absl::Status Daemon::StartPeers() {
  const Config& cfg = state_.config;
  if (cfg.peers.listen.empty()) {
    spdlog::info("peer plane off (peers.listen is empty)");
    return absl::OkStatus();
  }
  PeerOptions options{.node_name = cfg.node.name,
                      .config = cfg.peers,
                      // Peers send CUDA memory only to a node that takes it:
                      // its UCX can, and its gpu.remote_path allows it.
                      .capabilities = state_.gpu_direct ? wire::kCapCudaMemory : 0,
                      .transports = ucx_->info().transports};
  if (!shard_peers_.empty()) {
    for (const auto& loop : shard_loops_) {
      ucx::Loop* raw = loop.get();
      auto address = raw->Call<absl::StatusOr<std::vector<uint8_t>>>(
          [raw] { return raw->DataWorkerFromLoop().Address(); }, absl::Seconds(30));
      if (!address.ok()) return address.status();
      if (!address->ok()) return address->status();
      options.shard_addresses.push_back(**std::move(address));
    }
  }
  ucx::Loop* loop = ucx_.get();
  auto started = loop->Call<absl::StatusOr<std::unique_ptr<PeerManager>>>(
      [loop,
       options = std::move(options)]() mutable -> absl::StatusOr<std::unique_ptr<PeerManager>> {
        auto pm = PeerManager::StartFromLoop(loop->ControlWorkerFromLoop(),
                                             loop->DataWorkerFromLoop(), std::move(options));
        if (!pm.ok()) return pm.status();
        PeerManager* raw = pm->get();
        if (auto st = loop->SetTickerFromLoop(raw->tick_interval(), [raw] { raw->TickFromLoop(); });
            !st.ok()) {
          return st;
        }
        return pm;
      },
      absl::Seconds(30));
  if (!started.ok()) return started.status();
  if (!started->ok()) return started->status();
  peers_ = **std::move(started);
  state_.peers = peers_.get();
  state_.peer_listen_address = peers_->listen_address().ToString();
  return absl::OkStatus();
}

absl::Status Daemon::StartRingEngine() {
  const Config& cfg = state_.config;
  EngineShards::Options options{
      .node_name = cfg.node.name,
      .max_in_flight = static_cast<uint64_t>(cfg.sessions.max_in_flight),
      .copy_threads = HostCopier::ThreadsFor(cfg.engine.copy_threads),
      .copy_min_bytes = static_cast<uint64_t>(cfg.engine.parallel_copy_min_kib) << 10,
      .peers = peers_.get(),
      // Shards 1..N-1 took links of their own (StartShardLoops).
      .shard_links = shard_peers_.empty() ? nullptr : peers_.get(),
      .limits = {.eager_limit = static_cast<uint64_t>(cfg.peers.eager_limit),
                 .max_in_flight = static_cast<uint64_t>(cfg.peers.max_in_flight),
                 .gpu_direct = state_.gpu_direct,
                 .gpu_direct_only = cfg.gpu.remote_path == "direct",
                 .bounce_keep_bytes = static_cast<uint64_t>(cfg.gpu.bounce_keep_mib) << 20,
                 .same_host_handles = cfg.gpu.same_host == "handles",
                 .dead_after = absl::Milliseconds(cfg.peers.dead_after_ms),
                 .window_rma = cfg.peers.window_transfer == "rma"}};
  sessions_->SetShards(shard_loops_.size() + 1);
  auto shards = EngineShards::Start(*ucx_, std::exchange(shard_loops_, {}), *sessions_,
                                    std::move(options), std::exchange(shard_peers_, {}));
  if (!shards.ok()) return shards.status();
  shards_ = *std::move(shards);
  state_.engine = shards_.get();
  spdlog::info("engine: {} shard(s)", shards_->size());
  EngineShards* raw = shards_.get();
  sessions_->SetCloseObserver([raw](uint64_t session) { raw->RemoveSession(session); });
  return absl::OkStatus();
}

int Daemon::Run() {
  AwaitSignal();
  if (systemd_.watchdog_interval()) {
    spdlog::info(
        "systemd watchdog every {} ms",
        std::chrono::duration_cast<std::chrono::milliseconds>(*systemd_.watchdog_interval())
            .count());
    ucx_last_alive_ns_ = NowNs();
    FeedWatchdog();
  }
  const Config& cfg = state_.config;
  spdlog::info("axond {} ready: node '{}', control socket {}, pid {}", kVersion, cfg.node.name,
               cfg.control.socket, ::getpid());
  systemd_.Ready(absl::StrCat("node ", cfg.node.name, ", serving on ", cfg.control.socket));
  io_.run();
  spdlog::info("axond stopped");
  return 0;
}

void Daemon::AwaitSignal() {
  signals_.async_wait([this](std::error_code ec, int signal) {
    if (ec) return;
    OnSignal(signal);
    if (!stopping_) AwaitSignal();
  });
}

void Daemon::OnSignal(int signal) {
  switch (signal) {
    case SIGHUP:
      ReloadConfig();
      break;
    case SIGTERM:
      Shutdown("SIGTERM");
      break;
    case SIGINT:
      Shutdown("SIGINT");
      break;
    default:
      break;
  }
}

void Daemon::ReloadConfig() {
  systemd_.Reloading();
  auto fresh = LoadConfig(sources_);
  if (!fresh.ok()) {
    spdlog::error("SIGHUP: config not reloaded, keeping the running one: {}",
                  fresh.status().message());
  } else {
    auto level = ParseLogLevel(fresh->log.level);
    if (level.ok()) spdlog::set_level(*level);
    state_.config_reloads.fetch_add(1);
    spdlog::warn("SIGHUP: log level is now '{}'; other changes take effect on restart",
                 fresh->log.level);
  }
  systemd_.Ready("reloaded");
}

// Pings systemd only while the UCX thread keeps answering: a wedged UCX thread
// stops the pings and systemd restarts the daemon.
void Daemon::FeedWatchdog() {
  const auto interval = *systemd_.watchdog_interval();
  const int64_t now = NowNs();
  const int64_t limit = std::chrono::duration_cast<std::chrono::nanoseconds>(interval).count();
  if (now - ucx_last_alive_ns_.load() < limit) {
    systemd_.Watchdog();
  } else {
    spdlog::error("the UCX thread has not answered for {} ms; not feeding the watchdog",
                  (now - ucx_last_alive_ns_.load()) / 1000000);
  }
  ucx_->Post([this] { ucx_last_alive_ns_ = NowNs(); });
  watchdog_timer_.expires_after(interval / 2);
  watchdog_timer_.async_wait([this](std::error_code ec) {
    if (!ec && !stopping_) FeedWatchdog();
  });
}

void Daemon::Shutdown(const char* why) {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("shutting down ({})", why);
  systemd_.Stopping();
  metrics_server_.reset();  // before the parts a scrape reads go
  // gRPC waits out the grace for every open connection, not only for calls
  // in flight (clients close theirs only when they next notice), so a
  // longer one made every stop with a client attached last that long.
  // Control calls are short; one cut off is retried against the next axond.
  if (control_server_) control_server_->Shutdown(std::chrono::milliseconds(250));
  if (session_server_) session_server_->Shutdown();
  std::error_code ignored;
  signals_.cancel(ignored);
  watchdog_timer_.cancel();
  io_.stop();
}

}  // namespace axon::daemon
