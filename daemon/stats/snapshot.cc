#include "daemon/stats/snapshot.h"

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "common/wire/header.h"
#include "daemon/engine/shards.h"
#include "daemon/membership/membership.h"
#include "daemon/peer/peer_manager.h"
#include "daemon/rpc/control_server.h"

namespace axon::daemon {

absl::Status FillStats(DaemonState& state, v1::StatsResponse& out) {
  out.set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - state.start_time));
  if (state.control_server != nullptr) {
    out.set_control_connections_accepted(state.control_server->connections_accepted());
    out.set_control_connections_denied(state.control_server->connections_denied());
  }
  for (const auto& [method, count] : state.rpc_stats.Snapshot()) {
    (*out.mutable_rpc_calls())[method] = count;
  }
  out.set_sessions_attached_total(state.sessions->attached_total());
  out.set_sessions_closed_total(state.sessions->closed_total());
  out.set_sessions_active(state.sessions->active());
  for (const auto& [key, n] : state.sessions->refusals())
    (*out.mutable_refused_by_limit())[key] = n;
  out.set_config_reloads(state.config_reloads.load());
  const CudaRegistryStats cuda = state.sessions->cuda_stats();
  out.set_gpu_registrations(cuda.registrations);
  out.set_gpu_ipc_opens(cuda.ipc_opens);
  out.set_gpu_ipc_reuses(cuda.ipc_reuses);
  out.set_gpu_vmm_imports(cuda.vmm_imports);
  out.set_gpu_allocations_open(cuda.open_now);
  if (state.engine != nullptr) {
    // Summed over the engine shards' threads (the UCX thread is shard 0).
    out.set_ucx_thread_wakeups(state.engine->wakeups());
    out.set_ucx_thread_tasks(state.engine->tasks_run());
    out.set_ucx_thread_busy_seconds(absl::ToDoubleSeconds(state.engine->busy()));
    auto gpu = state.engine->Gpu(kSnapshotTimeout);
    if (!gpu.ok()) return gpu.status();
    out.set_gpu_copies(gpu->copies);
    out.set_gpu_copy_bytes(gpu->copy_bytes);
    out.set_gpu_staged_messages(gpu->staged);
    out.set_gpu_direct_messages(gpu->direct);
    out.set_gpu_handle_messages(gpu->by_handle);
    out.set_gpu_staged_bytes(gpu->staged_bytes);
    out.set_gpu_direct_bytes(gpu->direct_bytes);
    out.set_gpu_handle_bytes(gpu->by_handle_bytes);
    out.set_gpu_peer_handles_open(gpu->handles_open);
    out.set_gpu_bounce_allocations(gpu->bounce_allocations);
    out.set_gpu_bounce_idle_device_bytes(gpu->bounce_idle_device_bytes);
    out.set_gpu_bounce_idle_pinned_bytes(gpu->bounce_idle_pinned_bytes);
    out.set_gpu_bounce_in_use_device_bytes(gpu->bounce_in_use_device_bytes);
    out.set_gpu_bounce_in_use_pinned_bytes(gpu->bounce_in_use_pinned_bytes);
    auto allocations = state.engine->Allocations(kSnapshotTimeout);
    if (!allocations.ok()) return allocations.status();
    out.set_ucx_thread_allocations(*allocations);
  }
  return absl::OkStatus();
}

absl::Status FillNodes(DaemonState& state, v1::ListNodesResponse& out) {
  out.set_discovery(state.config.peers.discovery);
  if (state.membership == nullptr) return absl::OkStatus();
  const Membership::State m = state.membership->state();
  out.set_registered(m.registered);
  out.set_watching(m.watching);
  out.set_last_error(m.last_error);
  std::map<std::string, PeerState> connections;
  if (state.peers != nullptr) {
    PeerManager* peers = state.peers;
    auto snapshot = state.ucx->Call<std::vector<PeerSnapshot>>(
        [peers] { return peers->SnapshotFromLoop(); }, kSnapshotTimeout);
    if (!snapshot.ok()) return snapshot.status();
    for (const PeerSnapshot& p : *snapshot) connections[p.name] = p.state;
  }
  for (const MemberTable::Entry& e : state.membership->members()) {
    v1::NodeInfo* info = out.add_nodes();
    info->set_name(e.member.name);
    info->set_address(e.member.address);
    auto it = connections.find(e.member.name);
    const PeerState peer = it == connections.end() ? PeerState::kDown : it->second;
    info->set_state(e.member.wire_version != wire::kVersion ? "incompatible" : PeerStateName(peer));
    info->set_connected(peer == PeerState::kUp);
    info->set_joined_unix_ms(absl::ToUnixMillis(e.joined));
    info->set_started_unix_ms(absl::ToUnixMillis(e.member.started));
    info->set_incarnation(e.member.incarnation);
    info->set_wire_version(e.member.wire_version);
    info->set_version(e.member.version);
  }
  return absl::OkStatus();
}

absl::Status FillPeers(DaemonState& state, v1::ListPeersResponse& out) {
  if (state.peers == nullptr) return absl::OkStatus();  // no peer plane
  PeerManager* peers = state.peers;
  auto snapshot = state.ucx->Call<std::vector<PeerSnapshot>>(
      [peers] { return peers->SnapshotFromLoop(); }, kSnapshotTimeout);
  if (!snapshot.ok()) return snapshot.status();
  for (const PeerSnapshot& p : *snapshot) {
    v1::PeerInfo* info = out.add_peers();
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
    info->set_reconnects(p.times_up > 0 ? p.times_up - 1 : 0);
    info->set_failed_dials(p.failed_dials);
    info->set_shard_links(p.shard_links);
    info->set_shard_frames(p.shard_frames);
    const bool direct = state.gpu_direct && p.peer_cuda_memory;
    // On this host (a cuda_ipc lane), GPU tensors in legacy IPC memory go
    // by handle (RemotePath); the rest still go direct.
    const bool handles =
        direct && state.config.gpu.same_host == "handles" &&
        std::any_of(p.transports.begin(), p.transports.end(),
                    [](const std::string& tl) { return absl::StartsWith(tl, "cuda_ipc/"); });
    info->set_gpu_path(handles                                    ? "handles"
                       : direct                                   ? "direct"
                       : state.config.gpu.remote_path == "direct" ? "refused"
                                                                  : "staging");
  }
  return absl::OkStatus();
}

absl::Status FillSessions(DaemonState& state, v1::ListSessionsResponse& out) {
  std::map<uint64_t, SessionTraffic> traffic;
  if (state.engine != nullptr) {
    auto got = state.engine->Traffic(kSnapshotTimeout);
    if (!got.ok()) return got.status();
    traffic = *std::move(got);
  }
  std::multimap<uint64_t, WindowInfo> windows;  // by session
  if (state.sessions->windows() != nullptr) {
    for (WindowInfo& w : state.sessions->windows()->List())
      windows.emplace(w.session, std::move(w));
  }
  for (const SessionSnapshot& s : state.sessions->List()) {
    v1::SessionInfo* info = out.add_sessions();
    info->set_session_id(s.id);
    info->set_client_name(s.client_name);
    info->set_placement(s.placement);
    info->set_shard(s.shard);
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
      for (uint64_t n : c.latency_below_pow2_us) m->add_latency_below_pow2_us(n);
      m->set_latency_sum_us(c.latency_sum_us);
    }
    for (auto [w, end] = windows.equal_range(s.id); w != end; ++w) {
      const WindowInfo& in = w->second;
      v1::WindowInfo* window = info->add_windows();
      window->set_window_id(in.id);
      window->set_region_id(in.region_id);
      window->set_offset(in.offset);
      window->set_length(in.length);
      window->set_notify_endpoint(in.notify_endpoint);
      for (const std::string& a : in.allowed) window->add_allowed(a);
      window->set_readable((in.access & wire::kWindowRead) != 0);
      window->set_writable((in.access & wire::kWindowWrite) != 0);
      window->set_holds(in.holds);
      window->set_writes(in.writes);
      window->set_reads(in.reads);
      window->set_bytes_written(in.bytes_written);
      window->set_bytes_read(in.bytes_read);
      window->set_local_ops(in.local_ops);
      window->set_local_bytes(in.local_bytes);
      window->set_remote_ops(in.remote_ops);
      window->set_remote_bytes(in.remote_bytes);
      window->set_rma_ops(in.rma_ops);
      window->set_rma_bytes(in.rma_bytes);
    }
    if (auto it = traffic.find(s.id); it != traffic.end()) {
      info->set_in_flight(it->second.in_flight);
      info->set_messages_sent(it->second.messages_sent);
      info->set_bytes_sent(it->second.bytes_sent);
      info->set_messages_received(it->second.messages_received);
      info->set_bytes_received(it->second.bytes_received);
    }
  }
  return absl::OkStatus();
}

}  // namespace axon::daemon
