// What the control and admin services see of the daemon: its parts, and the
// facts fixed at start-up. Owned by Daemon; services hold a reference.
#pragma once

#include <atomic>
#include <string>

#include "absl/time/time.h"
#include "common/cuda/cuda_info.h"
#include "daemon/config/config.h"
#include "daemon/rpc_stats.h"
#include "daemon/session/session_manager.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon::rpc {
class ControlServer;
}

namespace axon::daemon {

class PeerManager;
class EngineShards;
class Membership;

struct DaemonState {
  Config config;  // as loaded at start-up (log.level may change since)
  std::string config_path;
  absl::Time start_time;
  CudaInfo cuda;
  // GPU data to and from peers whose UCX takes CUDA memory goes through UCX
  // in device memory (gpu.remote_path auto or direct, and UCX can).
  bool gpu_direct = false;
  ucx::Loop* ucx = nullptr;
  SessionManager* sessions = nullptr;
  rpc::ControlServer* control_server = nullptr;  // set once serving
  PeerManager* peers = nullptr;      // null without a peer plane; use on the UCX thread only
  EngineShards* engine = nullptr;    // thread-safe calls; null once shutting down
  Membership* membership = nullptr;  // thread-safe; null unless peers.discovery is etcd
  std::string peer_listen_address;
  std::string metrics_address;  // "" when the metrics endpoint is off
  RpcStats rpc_stats;
  std::atomic<uint64_t> config_reloads{0};
};

}  // namespace axon::daemon
