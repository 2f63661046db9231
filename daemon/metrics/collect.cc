#include "daemon/metrics/collect.h"

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/process_info.h"
#include "common/version.h"
#include "daemon/engine/shards.h"
#include "daemon/metrics/exposition.h"
#include "daemon/stats/snapshot.h"

namespace axon::daemon::metrics {
namespace {

using T = Type;

// Two samples of the current family that differ in one label: `key` is
// `first` with value `a`, then `second` with value `b`.
void Both(Exposition& out, Labels labels, absl::string_view key, absl::string_view first,
          uint64_t a, absl::string_view second, uint64_t b) {
  labels.emplace_back(key, first);
  out.Sample(labels, a);
  labels.back().second = second;
  out.Sample(labels, b);
}

void Process(Exposition& out, const DaemonState& state) {
  out.Family("axon_build_info", T::kGauge, "Always 1: the daemon's version and node name.");
  out.Sample({{"version", kVersion}, {"node", state.config.node.name}}, uint64_t{1});
  out.Family("process_start_time_seconds", T::kGauge, "Start time of axond, Unix seconds.");
  out.Sample({}, absl::ToDoubleSeconds(state.start_time - absl::UnixEpoch()));
  auto usage = OwnUsage();
  if (!usage.ok()) return;  // no /proc: the rest still goes out
  out.Family("process_resident_memory_bytes", T::kGauge, "Resident memory of axond.");
  out.Sample({}, usage->resident_bytes);
  out.Family("process_open_fds", T::kGauge, "File descriptors axond holds open.");
  out.Sample({}, usage->open_fds);
  out.Family("process_max_fds", T::kGauge, "axond's open-file limit (soft RLIMIT_NOFILE).");
  out.Sample({}, usage->max_fds);
  out.Family("process_threads", T::kGauge, "Threads of axond.");
  out.Sample({}, usage->threads);
  out.Family("process_cpu_seconds_total", T::kCounter, "CPU time of axond, user and system.");
  out.Sample({}, usage->cpu_seconds);
}

void Stats(Exposition& out, const v1::StatsResponse& s) {
  out.Family("axon_ucx_thread_busy_seconds_total", T::kCounter,
             "Time the UCX thread spent on work (messages, UCX progress, tasks); its rate is "
             "the share of a core that moves every message.");
  out.Sample({}, s.ucx_thread_busy_seconds());
  out.Family("axon_ucx_thread_wakeups_total", T::kCounter, "Times the UCX thread woke from sleep.");
  out.Sample({}, s.ucx_thread_wakeups());
  out.Family("axon_ucx_thread_tasks_total", T::kCounter,
             "Tasks other threads handed to the UCX thread.");
  out.Sample({}, s.ucx_thread_tasks());
  out.Family("axon_ucx_thread_allocations_total", T::kCounter,
             "Heap allocations made on the UCX thread.");
  out.Sample({}, s.ucx_thread_allocations());
  out.Family("axon_control_connections_total", T::kCounter,
             "Connections to the control socket, by whether the access check let them in.");
  out.Sample({{"result", "accepted"}}, s.control_connections_accepted());
  out.Sample({{"result", "denied"}}, s.control_connections_denied());
  out.Family("axon_rpc_calls_total", T::kCounter, "Control and admin RPCs served, by method.");
  for (const auto& [method, count] : s.rpc_calls()) out.Sample({{"method", method}}, count);
  out.Family("axon_sessions", T::kGauge, "Client sessions attached now.");
  out.Sample({}, s.sessions_active());
  out.Family("axon_sessions_attached_total", T::kCounter, "Client sessions ever attached.");
  out.Sample({}, s.sessions_attached_total());
  out.Family("axon_sessions_closed_total", T::kCounter, "Client sessions closed.");
  out.Sample({}, s.sessions_closed_total());
  out.Family("axon_refused_total", T::kCounter,
             "Requests refused past a bound (a session, an endpoint, a region), by the bound's "
             "config key.");
  const std::map<std::string, uint64_t> refused(s.refused_by_limit().begin(),
                                                s.refused_by_limit().end());
  for (const auto& [key, n] : refused) out.Sample({{"limit", key}}, n);
  out.Family("axon_config_reloads_total", T::kCounter, "Configuration reloads (SIGHUP).");
  out.Sample({}, s.config_reloads());

  out.Family("axon_gpu_registrations_total", T::kCounter, "GPU memory regions registered.");
  out.Sample({}, s.gpu_registrations());
  out.Family("axon_gpu_ipc_opens_total", T::kCounter,
             "CUDA IPC handles opened, by whether the allocation was already open here.");
  out.Sample({{"result", "opened"}}, s.gpu_ipc_opens());
  out.Sample({{"result", "reused"}}, s.gpu_ipc_reuses());
  out.Family("axon_gpu_vmm_imports_total", T::kCounter, "CUDA VMM allocations imported by fd.");
  out.Sample({}, s.gpu_vmm_imports());
  out.Family("axon_gpu_allocations_open", T::kGauge, "Clients' GPU allocations open now.");
  out.Sample({}, s.gpu_allocations_open());
  out.Family("axon_gpu_copies_total", T::kCounter, "GPU copies the daemon made on this node.");
  out.Sample({}, s.gpu_copies());
  out.Family("axon_gpu_copy_bytes_total", T::kCounter, "Bytes of those GPU copies.");
  out.Sample({}, s.gpu_copy_bytes());
  out.Family("axon_gpu_messages_total", T::kCounter,
             "GPU messages to and from other nodes, by path: staged through pinned host memory, "
             "direct in device memory, or by CUDA IPC handle.");
  out.Sample({{"path", "staged"}}, s.gpu_staged_messages());
  out.Sample({{"path", "direct"}}, s.gpu_direct_messages());
  out.Sample({{"path", "handle"}}, s.gpu_handle_messages());
  out.Family("axon_gpu_message_bytes_total", T::kCounter,
             "Bytes of those GPU messages, sent and received, by path.");
  out.Sample({{"path", "staged"}}, s.gpu_staged_bytes());
  out.Sample({{"path", "direct"}}, s.gpu_direct_bytes());
  out.Sample({{"path", "handle"}}, s.gpu_handle_bytes());
  out.Family("axon_gpu_peer_handles_open", T::kGauge,
             "Peers' GPU allocations this daemon holds open by CUDA IPC handle.");
  out.Sample({}, s.gpu_peer_handles_open());
  out.Family("axon_gpu_bounce_allocations_total", T::kCounter,
             "Bounce buffers allocated for GPU messages.");
  out.Sample({}, s.gpu_bounce_allocations());
  out.Family("axon_gpu_bounce_idle_bytes", T::kGauge,
             "Idle bounce buffers kept for reuse, by memory (gpu.bounce_keep_mib).");
  out.Sample({{"memory", "device"}}, s.gpu_bounce_idle_device_bytes());
  out.Sample({{"memory", "pinned"}}, s.gpu_bounce_idle_pinned_bytes());
  out.Family("axon_gpu_bounce_in_use_bytes", T::kGauge,
             "Bounce buffers held by GPU transfers in flight, by memory.");
  out.Sample({{"memory", "device"}}, s.gpu_bounce_in_use_device_bytes());
  out.Sample({{"memory", "pinned"}}, s.gpu_bounce_in_use_pinned_bytes());
}

void Peers(Exposition& out, const v1::ListPeersResponse& r) {
  out.Family("axon_peer_up", T::kGauge, "1 while the connection to the peer is up.");
  for (const auto& p : r.peers()) out.Sample({{"peer", p.name()}}, uint64_t{p.state() == "up"});
  out.Family("axon_peer_failed_dials", T::kGauge,
             "Dials of the peer that failed since it was last up (0 while up).");
  for (const auto& p : r.peers()) out.Sample({{"peer", p.name()}}, p.failed_dials());
  out.Family("axon_peer_messages_total", T::kCounter, "Messages to and from the peer.");
  for (const auto& p : r.peers()) {
    Both(out, {{"peer", p.name()}}, "direction", "sent", p.messages_sent(), "received",
         p.messages_received());
  }
  out.Family("axon_peer_bytes_total", T::kCounter, "Bytes to and from the peer.");
  for (const auto& p : r.peers()) {
    Both(out, {{"peer", p.name()}}, "direction", "sent", p.bytes_sent(), "received",
         p.bytes_received());
  }
  out.Family("axon_peer_rtt_seconds", T::kGauge, "The last keepalive round trip to the peer.");
  for (const auto& p : r.peers()) out.Sample({{"peer", p.name()}}, p.last_rtt_us() * 1e-6);
  out.Family("axon_peer_reconnects_total", T::kCounter,
             "Times the connection to the peer came up again after it had been up.");
  for (const auto& p : r.peers()) out.Sample({{"peer", p.name()}}, p.reconnects());
  out.Family("axon_peer_shard_frames_total", T::kCounter,
             "Frames to and from the peer on the engine shards' own links (engine.remote).");
  for (const auto& p : r.peers()) out.Sample({{"peer", p.name()}}, p.shard_frames());
}

void Sessions(Exposition& out, const v1::ListSessionsResponse& r,
              const std::map<uint64_t, SessionTraffic>& rings) {
  std::vector<std::string> ids;
  ids.reserve(static_cast<size_t>(r.sessions_size()));
  for (const auto& s : r.sessions()) ids.push_back(absl::StrCat(s.session_id()));
  auto each = [&](auto fn) {
    for (int i = 0; i < r.sessions_size(); ++i) {
      const auto& s = r.sessions(i);
      fn(s, Labels{{"session", ids[static_cast<size_t>(i)]}, {"client", s.client_name()}});
    }
  };
  out.Family("axon_session_registered_bytes", T::kGauge, "Memory the session registered.");
  each([&](const auto& s, const Labels& l) { out.Sample(l, s.registered_bytes()); });
  out.Family("axon_session_regions", T::kGauge, "Memory regions the session registered.");
  each([&](const auto& s, const Labels& l) { out.Sample(l, s.regions()); });
  out.Family("axon_session_operations_in_flight", T::kGauge,
             "Operations the session submitted that have not completed.");
  each([&](const auto& s, const Labels& l) { out.Sample(l, s.in_flight()); });
  out.Family("axon_session_messages_total", T::kCounter, "Messages the session sent and received.");
  each([&](const auto& s, const Labels& l) {
    Both(out, l, "direction", "sent", s.messages_sent(), "received", s.messages_received());
  });
  out.Family("axon_session_bytes_total", T::kCounter, "Bytes the session sent and received.");
  each([&](const auto& s, const Labels& l) {
    Both(out, l, "direction", "sent", s.bytes_sent(), "received", s.bytes_received());
  });
  out.Family("axon_session_ring_entries", T::kGauge,
             "Entries waiting on the session's rings: submissions the daemon has not taken, "
             "completions the client has not taken (1024 fit on each ring).");
  each([&](const auto& s, const Labels& l) {
    auto it = rings.find(s.session_id());
    if (it == rings.end()) return;
    Both(out, l, "ring", "submissions", it->second.submissions_queued, "completions",
         it->second.completions_queued);
  });

  // Calls, per serving endpoint and method (endpoint names are unique on a
  // node, so the session adds nothing here).
  auto calls = [&](auto fn) {
    for (const auto& s : r.sessions()) {
      for (const auto& m : s.calls())
        fn(m, Labels{{"endpoint", m.endpoint()}, {"method", m.method()}});
    }
  };
  out.Family("axon_calls_total", T::kCounter, "Calls served that ended, by endpoint and method.");
  calls([&](const auto& m, const Labels& l) { out.Sample(l, m.calls()); });
  out.Family("axon_call_errors_total", T::kCounter, "Calls served that ended with an error.");
  calls([&](const auto& m, const Labels& l) { out.Sample(l, m.errors()); });
  out.Family("axon_calls_in_flight", T::kGauge, "Calls taken and not yet answered.");
  calls([&](const auto& m, const Labels& l) { out.Sample(l, m.in_flight()); });
  out.Family("axon_call_dropped_replies_total", T::kCounter,
             "Replies that could not be delivered: the caller had gone or given up.");
  calls([&](const auto& m, const Labels& l) { out.Sample(l, m.dropped_replies()); });
  out.Family("axon_call_duration_seconds", T::kHistogram,
             "Time from a request's arrival at the server to its reply's departure, as the "
             "serving client last reported it (about once a second).");
  calls([&](const auto& m, const Labels& l) {
    out.Histogram(l, {m.latency_below_pow2_us().begin(), m.latency_below_pow2_us().end()},
                  m.calls(), m.latency_sum_us());
  });
}

void Operations(Exposition& out, const OperationStats& ops) {
  out.Family("axon_send_duration_seconds", T::kHistogram,
             "Sends, from submission to completion (the data in the receiver's memory), for one "
             "operation in 16.");
  out.Histogram({}, ops.send_latency);
  out.Family("axon_receive_duration_seconds", T::kHistogram,
             "Posted receives, from submission to completion (waiting for the message "
             "included), for one operation in 16.");
  out.Histogram({}, ops.receive_latency);
  out.Family("axon_operations_failed_total", T::kCounter,
             "Operations that completed with an error, by status code: RESOURCE_EXHAUSTED is a "
             "limit, INVALID_ARGUMENT a bad request, UNAVAILABLE a peer gone.");
  for (size_t code = 1; code < ops.failed.size(); ++code) {
    const std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
    out.Sample({{"code", name}}, ops.failed[code]);
  }
}

}  // namespace

absl::StatusOr<std::string> Collect(DaemonState& state) {
  v1::StatsResponse stats;
  if (auto st = FillStats(state, stats); !st.ok()) return st;
  v1::ListPeersResponse peers;
  if (auto st = FillPeers(state, peers); !st.ok()) return st;
  v1::ListSessionsResponse sessions;
  if (auto st = FillSessions(state, sessions); !st.ok()) return st;
  std::map<uint64_t, SessionTraffic> rings;
  OperationStats ops;
  if (state.engine != nullptr) {
    auto got = state.engine->TrafficAndOperations(kSnapshotTimeout);
    if (!got.ok()) return got.status();
    rings = std::move(got->first);
    ops = got->second;
  }
  Exposition out;
  Process(out, state);
  Stats(out, stats);
  Peers(out, peers);
  Sessions(out, sessions, rings);
  Operations(out, ops);
  return out.Take();
}

}  // namespace axon::daemon::metrics
