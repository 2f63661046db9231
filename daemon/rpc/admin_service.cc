#include "daemon/rpc/admin_service.h"

#include <unistd.h>

#include "common/version.h"
#include "daemon/rpc/control_server.h"
#include "common/log.h"

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
  response->set_status(all_ok ? v1::HealthResponse::SERVING : v1::HealthResponse::NOT_SERVING);
  return grpc::Status::OK;
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

  response->set_session_count(static_cast<uint32_t>(state_.sessions->active()));
  response->set_peer_count(0);
  return grpc::Status::OK;
}

grpc::Status AdminService::Stats(grpc::ServerContext*, const v1::StatsRequest*,
                                 v1::StatsResponse* response) {
  state_.rpc_stats.Count("Admin/Stats");
  response->set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - state_.start_time));
  if (state_.control_server != nullptr) {
    response->set_control_connections_accepted(state_.control_server->connections_accepted());
    response->set_control_connections_denied(state_.control_server->connections_denied());
  }
  for (const auto& [method, count] : state_.rpc_stats.Snapshot()) {
    (*response->mutable_rpc_calls())[method] = count;
  }
  response->set_sessions_attached_total(state_.sessions->attached_total());
  response->set_sessions_closed_total(state_.sessions->closed_total());
  response->set_sessions_active(state_.sessions->active());
  response->set_ucx_thread_wakeups(state_.ucx->wakeups());
  response->set_ucx_thread_tasks(state_.ucx->tasks_run());
  response->set_config_reloads(state_.config_reloads.load());
  return grpc::Status::OK;
}

grpc::Status AdminService::ListPeers(grpc::ServerContext*, const v1::ListPeersRequest*,
                                     v1::ListPeersResponse*) {
  state_.rpc_stats.Count("Admin/ListPeers");
  // This daemon has no peer plane configured yet: the list is truly empty.
  return grpc::Status::OK;
}

grpc::Status AdminService::ListSessions(grpc::ServerContext*, const v1::ListSessionsRequest*,
                                        v1::ListSessionsResponse* response) {
  state_.rpc_stats.Count("Admin/ListSessions");
  for (const SessionSnapshot& s : state_.sessions->List()) {
    v1::SessionInfo* info = response->add_sessions();
    info->set_session_id(s.id);
    info->set_client_name(s.client_name);
    info->set_pid(s.creds.pid);
    info->set_uid(s.creds.uid);
    info->set_gid(s.creds.gid);
    info->set_attached_unix_ms(absl::ToUnixMillis(s.attached));
  }
  return grpc::Status::OK;
}

}  // namespace axon::daemon::rpc
