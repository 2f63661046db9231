#include "daemon/rpc/admin_service.h"

#include <unistd.h>

#include <algorithm>
#include <future>

#include "absl/strings/str_cat.h"
#include "common/cuda/driver.h"
#include "common/log.h"
#include "common/rpc/status_convert.h"
#include "common/version.h"
#include "daemon/engine/ring_engine.h"
#include "daemon/membership/membership.h"
#include "daemon/peer/peer_manager.h"
#include "daemon/rpc/control_server.h"
#include "daemon/stats/snapshot.h"

namespace axon::daemon::rpc {
namespace {

// How long Health waits for the UCX thread before calling it stuck.
constexpr absl::Duration kUcxPingTimeout = absl::Seconds(1);

}  // namespace

grpc::Status AdminService::Health(grpc::ServerContext*, const v1::HealthRequest*,
                                  v1::HealthResponse* response) {
  state_.rpc_stats.Count("Admin/Health");
  bool all_ok = true;
  auto add = [&](std::string name, const absl::Status& st, std::string ok_detail) {
    v1::HealthCheck* check = response->add_checks();
    check->set_name(std::move(name));
    check->set_ok(st.ok());
    check->set_detail(st.ok() ? std::move(ok_detail) : std::string(st.message()));
    all_ok = all_ok && st.ok();
  };
  add("ucx_thread", state_.ucx->Ping(kUcxPingTimeout), "the UCX thread answers");
  add("control_socket",
      ::access(state_.config.control.socket.c_str(), F_OK) == 0
          ? absl::OkStatus()
          : absl::UnavailableError("the control socket file " + state_.config.control.socket +
                                   " is gone; new clients cannot connect"),
      "listening on " + state_.config.control.socket);
  if (state_.membership != nullptr) {
    // etcd away is not a failure: local clients and known peers are served.
    const Membership::State m = state_.membership->state();
    v1::HealthCheck* check = response->add_checks();
    check->set_name("membership");
    const bool fine = m.registered && m.watching && m.last_error.empty();
    // Another daemon holding this node's name is a failure (it cannot join);
    // anything else is etcd's blink.
    check->set_ok(m.conflict.empty());
    check->set_degraded(m.conflict.empty() && !fine);
    check->set_detail(!m.conflict.empty() ? m.conflict
                      : fine
                          ? absl::StrCat("registered in etcd, watching ", state_.config.etcd.prefix)
                          : absl::StrCat(m.registered ? "registered" : "not registered", ", ",
                                         m.watching ? "watching" : "not watching",
                                         m.last_error.empty() ? "" : ": ", m.last_error));
    all_ok = all_ok && m.conflict.empty();
  }
  response->set_status(all_ok ? v1::HealthResponse::SERVING : v1::HealthResponse::NOT_SERVING);
  return grpc::Status::OK;
}

grpc::Status AdminService::ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                                     v1::ListNodesResponse* response) {
  state_.rpc_stats.Count("Admin/ListNodes");
  return axon::rpc::ToGrpcStatus(FillNodes(state_, *response));
}

grpc::Status AdminService::Status(grpc::ServerContext*, const v1::StatusRequest*,
                                  v1::StatusResponse* response) {
  state_.rpc_stats.Count("Admin/Status");
  response->set_node_name(state_.config.node.name);
  response->set_version(kVersion);
  response->set_pid(static_cast<int32_t>(::getpid()));
  response->set_start_time_unix_ms(absl::ToUnixMillis(state_.start_time));
  response->set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - state_.start_time));
  response->set_config_path(state_.config_path);
  response->set_control_socket(state_.config.control.socket);
  response->set_log_level(std::string(LogLevelName(spdlog::get_level())));

  const ucx::ContextInfo& info = state_.ucx->info();
  v1::UcxStatus* ucx = response->mutable_ucx();
  ucx->set_version(info.version);
  for (const auto& tl : info.transports) ucx->add_transports(tl);
  for (const auto& type : info.memory_types) ucx->add_memory_types(type);
  ucx->set_cuda_memory_supported(info.cuda_memory);
  ucx->set_transports_requested(state_.config.ucx.transports);

  v1::CudaStatus* cuda = response->mutable_cuda();
  cuda->set_built_with_cuda(state_.cuda.built_with_cuda);
  cuda->set_device_count(state_.cuda.device_count);
  cuda->set_driver_version(state_.cuda.driver_version);
  cuda->set_detail(state_.cuda.detail);
  cuda->set_remote_path(state_.gpu_direct ? "direct" : "staging");
  for (int device : cuda::DevicesWithContext()) {
    cuda->add_devices_in_use(device);
    if (cuda::SharedByMps(device)) cuda->add_devices_on_mps(device);
  }

  response->set_session_count(static_cast<uint32_t>(state_.sessions->active()));
  response->set_peer_count(static_cast<uint32_t>(state_.config.peers.static_peers.size()));
  response->set_peer_listen_address(state_.peer_listen_address);
  response->set_metrics_address(state_.metrics_address);
  return grpc::Status::OK;
}

grpc::Status AdminService::Stats(grpc::ServerContext*, const v1::StatsRequest*,
                                 v1::StatsResponse* response) {
  state_.rpc_stats.Count("Admin/Stats");
  return axon::rpc::ToGrpcStatus(FillStats(state_, *response));
}

grpc::Status AdminService::ListPeers(grpc::ServerContext*, const v1::ListPeersRequest*,
                                     v1::ListPeersResponse* response) {
  state_.rpc_stats.Count("Admin/ListPeers");
  return axon::rpc::ToGrpcStatus(FillPeers(state_, *response));
}

grpc::Status AdminService::Ping(grpc::ServerContext* context, const v1::PingRequest* request,
                                v1::PingResponse* response) {
  state_.rpc_stats.Count("Admin/Ping");
  constexpr uint64_t kMaxPingSize = 16 << 20;
  const uint32_t count = request->count() == 0 ? 10 : request->count();
  if (count > 100000 || request->size() > kMaxPingSize) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "count must be 1 to 100000 and size at most 16 MiB");
  }
  if (state_.peers == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this daemon has no peer plane (peers.listen is empty)");
  }
  PeerManager* peers = state_.peers;
  const absl::Duration timeout =
      absl::Milliseconds(state_.config.peers.dead_after_ms) + absl::Seconds(1);
  std::vector<double> rtts;
  for (uint32_t i = 0; i < count; ++i) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    auto done = std::make_shared<std::promise<absl::StatusOr<absl::Duration>>>();
    auto future = done->get_future();
    state_.ucx->Post([peers, node = request->node(), size = request->size(), done] {
      peers->PingFromLoop(node, size, [done](absl::StatusOr<absl::Duration> rtt) {
        done->set_value(std::move(rtt));
      });
    });
    if (future.wait_for(absl::ToChronoNanoseconds(timeout)) != std::future_status::ready) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the ping did not complete");
    }
    auto rtt = future.get();
    if (!rtt.ok()) return axon::rpc::ToGrpcStatus(rtt.status());
    rtts.push_back(absl::ToDoubleMicroseconds(*rtt));
    response->add_rtt_us(rtts.back());
  }
  std::sort(rtts.begin(), rtts.end());
  auto at = [&](double q) {
    return rtts[std::min(rtts.size() - 1, static_cast<size_t>(q * rtts.size()))];
  };
  response->set_min_us(rtts.front());
  response->set_median_us(at(0.5));
  response->set_p99_us(at(0.99));
  response->set_max_us(rtts.back());
  return grpc::Status::OK;
}

grpc::Status AdminService::ListSessions(grpc::ServerContext*, const v1::ListSessionsRequest*,
                                        v1::ListSessionsResponse* response) {
  state_.rpc_stats.Count("Admin/ListSessions");
  return axon::rpc::ToGrpcStatus(FillSessions(state_, *response));
}

}  // namespace axon::daemon::rpc
