#include "daemon/rpc/admin_service.h"

#include <unistd.h>

#include <algorithm>
#include <future>

#include "absl/strings/match.h"
#include "common/cuda/driver.h"
#include "common/log.h"
#include "common/rpc/status_convert.h"
#include "common/version.h"
#include "daemon/alloc_count.h"
#include "daemon/engine/ring_engine.h"
#include "daemon/peer/peer_manager.h"
#include "daemon/rpc/control_server.h"

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
  cuda->set_remote_path(state_.gpu_direct ? "direct" : "staging");
  for (int device : cuda::DevicesWithContext()) {
    cuda->add_devices_in_use(device);
    if (cuda::SharedByMps(device)) cuda->add_devices_on_mps(device);
  }

  response->set_session_count(static_cast<uint32_t>(state_.sessions->active()));
  response->set_peer_count(static_cast<uint32_t>(state_.config.peers.static_peers.size()));
  response->set_peer_listen_address(state_.peer_listen_address);
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
  response->set_ucx_thread_busy_seconds(absl::ToDoubleSeconds(state_.ucx->busy()));
  response->set_config_reloads(state_.config_reloads.load());
  const CudaRegistryStats cuda = state_.sessions->cuda_stats();
  response->set_gpu_registrations(cuda.registrations);
  response->set_gpu_ipc_opens(cuda.ipc_opens);
  response->set_gpu_ipc_reuses(cuda.ipc_reuses);
  response->set_gpu_vmm_imports(cuda.vmm_imports);
  response->set_gpu_allocations_open(cuda.open_now);
  if (state_.engine != nullptr) {
    RingEngine* engine = state_.engine;
    auto gpu = state_.ucx->Call<GpuTraffic>([engine] { return engine->GpuTrafficFromLoop(); },
                                            kUcxPingTimeout);
    if (!gpu.ok()) return axon::rpc::ToGrpcStatus(gpu.status());
    response->set_gpu_copies(gpu->copies);
    response->set_gpu_copy_bytes(gpu->copy_bytes);
    response->set_gpu_staged_messages(gpu->staged);
    response->set_gpu_direct_messages(gpu->direct);
    response->set_gpu_handle_messages(gpu->by_handle);
    response->set_gpu_peer_handles_open(gpu->handles_open);
    response->set_gpu_bounce_allocations(gpu->bounce_allocations);
    response->set_gpu_bounce_idle_device_bytes(gpu->bounce_idle_device_bytes);
    response->set_gpu_bounce_idle_pinned_bytes(gpu->bounce_idle_pinned_bytes);
  }
  auto allocations =
      state_.ucx->Call<uint64_t>([] { return ThreadAllocations(); }, kUcxPingTimeout);
  if (!allocations.ok()) return axon::rpc::ToGrpcStatus(allocations.status());
  response->set_ucx_thread_allocations(*allocations);
  return grpc::Status::OK;
}

grpc::Status AdminService::ListPeers(grpc::ServerContext*, const v1::ListPeersRequest*,
                                     v1::ListPeersResponse* response) {
  state_.rpc_stats.Count("Admin/ListPeers");
  if (state_.peers == nullptr) return grpc::Status::OK;  // no peer plane
  PeerManager* peers = state_.peers;
  auto snapshot = state_.ucx->Call<std::vector<PeerSnapshot>>(
      [peers] { return peers->SnapshotFromLoop(); }, kUcxPingTimeout);
  if (!snapshot.ok()) return axon::rpc::ToGrpcStatus(snapshot.status());
  for (const PeerSnapshot& p : *snapshot) {
    v1::PeerInfo* info = response->add_peers();
    info->set_name(p.name);
    info->set_address(p.address);
    info->set_state(PeerStateName(p.state));
    info->set_state_since_unix_ms(absl::ToUnixMillis(p.since));
    for (const auto& tl : p.transports) info->add_transports(tl);
    info->set_messages_sent(p.messages_sent);
    info->set_messages_received(p.messages_received);
    info->set_bytes_sent(p.bytes_sent);
    info->set_bytes_received(p.bytes_received);
    info->set_last_rtt_us(absl::ToDoubleMicroseconds(p.last_rtt));
    info->set_last_error(p.last_error);
    info->set_dialer(p.dialer);
    info->set_peer_cuda_memory(p.peer_cuda_memory);
    const bool direct = state_.gpu_direct && p.peer_cuda_memory;
    // On this host (a cuda_ipc lane), GPU tensors in legacy IPC memory go
    // by handle (RemotePath); the rest still go direct.
    const bool handles =
        direct && state_.config.gpu.same_host == "handles" &&
        std::any_of(p.transports.begin(), p.transports.end(),
                    [](const std::string& tl) { return absl::StartsWith(tl, "cuda_ipc/"); });
    info->set_gpu_path(handles                                     ? "handles"
                       : direct                                    ? "direct"
                       : state_.config.gpu.remote_path == "direct" ? "refused"
                                                                   : "staging");
  }
  return grpc::Status::OK;
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
  std::map<uint64_t, SessionTraffic> traffic;
  if (state_.engine != nullptr) {
    RingEngine* engine = state_.engine;
    auto got = state_.ucx->Call<std::map<uint64_t, SessionTraffic>>(
        [engine] { return engine->TrafficFromLoop(); }, kUcxPingTimeout);
    if (!got.ok()) return axon::rpc::ToGrpcStatus(got.status());
    traffic = *std::move(got);
  }
  for (const SessionSnapshot& s : state_.sessions->List()) {
    v1::SessionInfo* info = response->add_sessions();
    info->set_session_id(s.id);
    info->set_client_name(s.client_name);
    info->set_pid(s.creds.pid);
    info->set_uid(s.creds.uid);
    info->set_gid(s.creds.gid);
    info->set_attached_unix_ms(absl::ToUnixMillis(s.attached));
    info->set_socket_bound(s.socket_bound);
    info->set_registered_bytes(s.registered_bytes);
    info->set_regions(s.regions);
    info->set_gpu_regions(s.gpu_regions);
    for (const auto& name : s.endpoints) info->add_endpoints(name);
    for (const CallReport& c : s.calls) {
      v1::MethodCalls* m = info->add_calls();
      m->set_endpoint(c.endpoint);
      m->set_method(c.method);
      m->set_calls(c.calls);
      m->set_errors(c.errors);
      m->set_in_flight(c.in_flight);
      m->set_dropped_replies(c.dropped_replies);
      m->set_p50_us(c.p50_us);
      m->set_p99_us(c.p99_us);
    }
    if (auto it = traffic.find(s.id); it != traffic.end()) {
      info->set_in_flight(it->second.in_flight);
      info->set_messages_sent(it->second.messages_sent);
      info->set_bytes_sent(it->second.bytes_sent);
      info->set_messages_received(it->second.messages_received);
      info->set_bytes_received(it->second.bytes_received);
    }
  }
  return grpc::Status::OK;
}

}  // namespace axon::daemon::rpc
