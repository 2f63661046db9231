// Daemon assembles axond: the UCX thread, the session manager, the control
// socket with its gRPC services, signals and systemd, all driven by one Asio
// io_context on the main thread.
#pragma once

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <memory>

#include "absl/status/statusor.h"
#include "daemon/config/config.h"
#include "daemon/daemon_state.h"
#include "daemon/engine/shards.h"
#include "daemon/membership/membership.h"
#include "daemon/metrics/metrics_server.h"
#include "daemon/peer/peer_manager.h"
#include "daemon/peer/shard_peers.h"
#include "daemon/rpc/admin_service.h"
#include "daemon/rpc/control_server.h"
#include "daemon/rpc/control_service.h"
#include "daemon/session/session_socket.h"
#include "daemon/systemd/notifier.h"

namespace axon::daemon {

class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(Config config, ConfigSources sources);
  ~Daemon();

  // Serves until SIGTERM or SIGINT; returns the process exit code.
  int Run();

 private:
  explicit Daemon(ConfigSources sources);
  void AwaitSignal();
  void OnSignal(int signal);
  void ReloadConfig();
  void FeedWatchdog();
  void Shutdown(const char* why);
  // The loops of engine shards 1..N-1 (their workers' addresses go in the
  // peer plane's hellos).
  absl::Status StartShardLoops();
  absl::Status StartPeers();
  absl::Status StartRingEngine();
  absl::Status StartMetrics();
  absl::Status StartMembership();

  // Declaration order is destruction order in reverse: io_ outlives
  // everything that registers work with it.
  asio::io_context io_;
  ConfigSources sources_;
  DaemonState state_;
  std::atomic<int64_t> ucx_last_alive_ns_{0};  // written by tasks on the UCX thread
  bool stopping_ = false;
  // The UCX thread that holds the peer plane, and engine shard 0.
  std::unique_ptr<ucx::Loop> ucx_;
  // Shared by the engine shards' loops when there are several.
  std::shared_ptr<ucx::Context> shared_context_;
  // Engine shards 1..N-1's loops, and their links to peers
  // (engine.remote: own), until EngineShards takes them.
  std::vector<std::unique_ptr<ucx::Loop>> shard_loops_;
  std::vector<std::unique_ptr<ShardPeers>> shard_peers_;  // each used on its loop
  std::unique_ptr<FdBudget> fds_;       // read by the listeners and sessions below
  std::unique_ptr<PeerManager> peers_;  // created, used and destroyed on the UCX thread
  std::unique_ptr<EngineShards> shards_;
  // Its watcher posts to the UCX thread: it goes before the peer plane.
  std::unique_ptr<Membership> membership_;
  // Declared before sessions_: closing sessions revokes their windows.
  std::unique_ptr<WindowTable> windows_;
  std::unique_ptr<SessionManager> sessions_;
  std::unique_ptr<rpc::AdminService> admin_service_;
  std::unique_ptr<rpc::ControlService> control_service_;
  std::unique_ptr<rpc::ControlServer> control_server_;
  std::unique_ptr<SessionSocketServer> session_server_;
  // Reads everything above from its own thread: stopped first (Shutdown).
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  SystemdNotifier systemd_;
  asio::signal_set signals_{io_};
  asio::steady_timer watchdog_timer_{io_};
};

}  // namespace axon::daemon
