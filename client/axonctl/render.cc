#include "client/axonctl/render.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace axon::ctl {
namespace {

void Row(std::string& out, absl::string_view key, absl::string_view value) {
  absl::StrAppendFormat(&out, "%-12s %s\n", key, value);
}

std::string FormatUnixMs(int64_t ms) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(ms), absl::LocalTimeZone());
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

std::string FormatDuration(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  if (s >= 86400) return absl::StrFormat("%dd %dh", s / 86400, (s % 86400) / 3600);
  if (s >= 3600) return absl::StrFormat("%dh %dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm %ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string RenderHealth(const v1::HealthResponse& health) {
  const bool ok = health.status() == v1::HealthResponse::SERVING;
  std::string out = ok ? "healthy\n" : "unhealthy\n";
  for (const auto& check : health.checks()) {
    const char* verdict = !check.ok() ? "FAIL" : check.degraded() ? "DEGRADED" : "ok";
    absl::StrAppendFormat(&out, "  %-8s %-16s %s\n", verdict, check.name(), check.detail());
  }
  return out;
}

std::string RenderStatus(const v1::StatusResponse& s) {
  std::string out;
  Row(out, "node", s.node_name());
  Row(out, "version",
      absl::StrCat("axond ", s.version(), " (pid ", s.pid(), ", up ",
                   FormatDuration(s.uptime_seconds()), ", since ",
                   FormatUnixMs(s.start_time_unix_ms()), ")"));
  Row(out, "socket", s.control_socket());
  Row(out, "config", s.config_path().empty() ? "(embedded defaults)" : s.config_path());
  Row(out, "log level", s.log_level());
  Row(out, "UCX",
      absl::StrCat(s.ucx().version(), "; CUDA memory ",
                   s.ucx().cuda_memory_supported() ? "supported" : "not supported",
                   "; memory types ", absl::StrJoin(s.ucx().memory_types(), ",")));
  Row(out, "transports",
      absl::StrCat(absl::StrJoin(s.ucx().transports(), " "),
                   s.ucx().transports_requested().empty()
                       ? ""
                       : absl::StrCat("  (restricted to ", s.ucx().transports_requested(), ")")));
  const auto& cuda = s.cuda();
  Row(out, "CUDA",
      !cuda.built_with_cuda() ? cuda.detail()
      : cuda.device_count() > 0
          ? absl::StrCat(cuda.device_count(), " device(s), driver ", cuda.driver_version() / 1000,
                         ".", (cuda.driver_version() % 1000) / 10)
          : absl::StrCat("no device: ", cuda.detail()));
  Row(out, "GPU path",
      absl::StrCat(
          cuda.remote_path(), " (to other nodes); devices in use: ",
          cuda.devices_in_use().empty() ? "none" : absl::StrJoin(cuda.devices_in_use(), ","),
          cuda.devices_in_use().empty() ? ""
          : cuda.devices_on_mps().empty()
              ? " (not shared through MPS)"
              : absl::StrCat(" (through MPS: ", absl::StrJoin(cuda.devices_on_mps(), ","), ")")));
  Row(out, "sessions", absl::StrCat(s.session_count()));
  Row(out, "peers", absl::StrCat(s.peer_count()));
  return out;
}

std::string RenderBusyShare(const v1::StatsResponse& before, const v1::StatsResponse& now) {
  const double wall = now.uptime_seconds() - before.uptime_seconds();
  if (wall <= 0) return "";
  std::string out;
  Row(out, "ucx thread",
      absl::StrFormat(
          "busy %.1f%% over the last %.1f s",
          100.0 * (now.ucx_thread_busy_seconds() - before.ucx_thread_busy_seconds()) / wall, wall));
  return out;
}

std::string RenderStats(const v1::StatsResponse& s) {
  std::string out;
  Row(out, "uptime", FormatDuration(s.uptime_seconds()));
  Row(out, "control",
      absl::StrCat(s.control_connections_accepted(), " connections accepted, ",
                   s.control_connections_denied(), " denied"));
  Row(out, "sessions",
      absl::StrCat(s.sessions_active(), " active, ", s.sessions_attached_total(), " attached, ",
                   s.sessions_closed_total(), " closed"));
  Row(out, "ucx thread",
      absl::StrCat(s.ucx_thread_wakeups(), " wake-ups, ", s.ucx_thread_tasks(), " tasks, ",
                   absl::StrFormat("busy %.3f s", s.ucx_thread_busy_seconds()),
                   s.uptime_seconds() > 0
                       ? absl::StrFormat(" (%.1f%% of uptime)",
                                         100.0 * s.ucx_thread_busy_seconds() / s.uptime_seconds())
                       : std::string()));
  Row(out, "reloads", absl::StrCat(s.config_reloads()));
  Row(out, "gpu memory",
      absl::StrCat(s.gpu_registrations(), " registrations (", s.gpu_ipc_opens(), " IPC opens, ",
                   s.gpu_ipc_reuses(), " reuses, ", s.gpu_vmm_imports(), " VMM imports), ",
                   s.gpu_allocations_open(), " allocations open"));
  Row(out, "gpu copies",
      absl::StrCat(s.gpu_copies(), " copies, ", s.gpu_copy_bytes(), " bytes; ",
                   s.gpu_staged_messages(), " messages staged, ", s.gpu_direct_messages(),
                   " direct, ", s.gpu_handle_messages(), " by handle; ", s.gpu_bounce_allocations(),
                   " bounce buffers allocated"));
  Row(out, "gpu peer handles", absl::StrCat(s.gpu_peer_handles_open(), " allocations open"));
  Row(out, "gpu bounce idle",
      absl::StrCat(s.gpu_bounce_idle_device_bytes(), " bytes device memory, ",
                   s.gpu_bounce_idle_pinned_bytes(), " bytes pinned host memory"));
  Row(out, "gpu bounce in use",
      absl::StrCat(s.gpu_bounce_in_use_device_bytes(), " bytes device memory, ",
                   s.gpu_bounce_in_use_pinned_bytes(), " bytes pinned host memory"));
  std::vector<std::string> refused;
  for (const auto& [key, count] : s.refused_by_limit()) {
    if (count > 0) refused.push_back(absl::StrCat(key, "=", count));
  }
  std::sort(refused.begin(), refused.end());
  Row(out, "refused", refused.empty() ? "none" : absl::StrJoin(refused, " "));
  std::vector<std::string> calls;
  for (const auto& [method, count] : s.rpc_calls())
    calls.push_back(absl::StrCat(method, "=", count));
  std::sort(calls.begin(), calls.end());
  Row(out, "rpc calls", calls.empty() ? "none" : absl::StrJoin(calls, " "));
  return out;
}

std::string RenderSessions(const v1::ListSessionsResponse& sessions) {
  std::string out = absl::StrFormat(
      "%-8s %-8s %-7s %-7s %-20s %-7s %-5s %-8s %14s %9s %15s %21s  %-12s %-12s %s\n", "SESSION",
      "PID", "UID", "GID", "ATTACHED", "SOCKET", "SHARD", "REGIONS", "REGISTERED", "IN-FLIGHT",
      "MSGS OUT/IN", "BYTES OUT/IN", "CLIENT", "PLACEMENT", "ENDPOINTS");
  for (const auto& s : sessions.sessions()) {
    absl::StrAppendFormat(
        &out, "%-8d %-8d %-7d %-7d %-20s %-7s %-5d %-8s %14d %9d %15s %21s  %-12s %-12s %s\n",
        s.session_id(), s.pid(), s.uid(), s.gid(), FormatUnixMs(s.attached_unix_ms()),
        s.socket_bound() ? "open" : "-", s.shard(),
        s.gpu_regions() > 0 ? absl::StrCat(s.regions(), " (", s.gpu_regions(), " gpu)")
                            : absl::StrCat(s.regions()),
        s.registered_bytes(), s.in_flight(),
        absl::StrCat(s.messages_sent(), "/", s.messages_received()),
        absl::StrCat(s.bytes_sent(), "/", s.bytes_received()),
        s.client_name().empty() ? "-" : s.client_name(),
        s.placement().empty() ? "-" : s.placement(),
        s.endpoints().empty() ? "-" : absl::StrJoin(s.endpoints(), ","));
  }
  return out;
}

std::string RenderCalls(const v1::ListSessionsResponse& sessions) {
  std::string out = absl::StrFormat("%-8s %-12s %-20s %-24s %10s %8s %9s %8s %10s %10s\n",
                                    "SESSION", "CLIENT", "ENDPOINT", "METHOD", "CALLS", "ERRORS",
                                    "IN-FLIGHT", "DROPPED", "P50", "P99");
  int rows = 0;
  for (const auto& s : sessions.sessions()) {
    for (const auto& c : s.calls()) {
      ++rows;
      absl::StrAppendFormat(&out, "%-8d %-12s %-20s %-24s %10d %8d %9d %8d %10s %10s\n",
                            s.session_id(), s.client_name().empty() ? "-" : s.client_name(),
                            c.endpoint(), c.method(), c.calls(), c.errors(), c.in_flight(),
                            c.dropped_replies(), absl::StrFormat("%.0fus", c.p50_us()),
                            absl::StrFormat("%.0fus", c.p99_us()));
    }
  }
  if (rows == 0) return "no call servers\n";
  return out;
}

std::string RenderWindows(const v1::ListSessionsResponse& sessions) {
  std::string out = absl::StrFormat(
      "%-8s %-12s %-20s %-10s %14s %-6s %-12s %5s %17s %21s %21s %27s  %s\n", "SESSION", "CLIENT",
      "WINDOW", "REGION", "BYTES", "ACCESS", "NOTIFY", "HOLDS", "WRITES/READS", "BYTES IN/OUT",
      "OPS LOCAL/REMOTE/RMA", "BYTES LOCAL/REMOTE/RMA", "ALLOWED");
  int rows = 0;
  for (const auto& s : sessions.sessions()) {
    for (const auto& w : s.windows()) {
      ++rows;
      absl::StrAppendFormat(
          &out, "%-8d %-12s %-20d %-10s %14d %-6s %-12s %5d %17s %21s %21s %27s  %s\n",
          s.session_id(), s.client_name().empty() ? "-" : s.client_name(), w.window_id(),
          absl::StrCat(w.region_id(), "+", w.offset()), w.length(),
          absl::StrCat(w.readable() ? "r" : "", w.writable() ? "w" : ""),
          w.notify_endpoint().empty() ? "-" : w.notify_endpoint(), w.holds(),
          absl::StrCat(w.writes(), "/", w.reads()),
          absl::StrCat(w.bytes_written(), "/", w.bytes_read()),
          absl::StrCat(w.local_ops(), "/", w.remote_ops(), "/", w.rma_ops()),
          absl::StrCat(w.local_bytes(), "/", w.remote_bytes(), "/", w.rma_bytes()),
          w.allowed().empty() ? "anyone" : absl::StrJoin(w.allowed(), ","));
    }
  }
  if (rows == 0) return "no windows exposed\n";
  return out;
}

std::string RenderPeers(const v1::ListPeersResponse& peers) {
  if (peers.peers().empty()) return "no peers\n";
  std::string out =
      absl::StrFormat("%-14s %-21s %-10s %-19s %9s %15s %19s %-8s  %s\n", "NAME", "ADDRESS",
                      "STATE", "SINCE", "RTT", "MSGS OUT/IN", "BYTES OUT/IN", "GPU", "TRANSPORTS");
  for (const auto& p : peers.peers()) {
    absl::StrAppendFormat(&out, "%-14s %-21s %-10s %-19s %9s %15s %19s %-8s  %s\n", p.name(),
                          p.address(), p.state(), FormatUnixMs(p.state_since_unix_ms()),
                          p.last_rtt_us() > 0 ? absl::StrFormat("%.0fus", p.last_rtt_us()) : "-",
                          absl::StrCat(p.messages_sent(), "/", p.messages_received()),
                          absl::StrCat(p.bytes_sent(), "/", p.bytes_received()),
                          p.gpu_path().empty() ? "-" : p.gpu_path(),
                          p.transports().empty() ? "-" : absl::StrJoin(p.transports(), ","));
    if (p.shard_links() > 0) {
      absl::StrAppendFormat(&out, "%-14s shard links: %d (%d frames)\n", "", p.shard_links(),
                            p.shard_frames());
    }
    if (p.state() != "up" && !p.last_error().empty()) {
      absl::StrAppendFormat(
          &out, "%-14s last error: %s%s\n", "", p.last_error(),
          p.failed_dials() > 1 ? absl::StrCat(" (", p.failed_dials(), " dials failed)") : "");
    }
  }
  return out;
}

std::string RenderNodes(const v1::ListNodesResponse& nodes) {
  if (nodes.discovery() != "etcd") {
    return absl::StrCat("peers.discovery is ", nodes.discovery(),
                        ": no membership (axonctl peers lists the configured peers)\n");
  }
  std::string out = absl::StrCat(
      "etcd: ", nodes.registered() ? "registered" : "NOT registered", ", ",
      nodes.watching() ? "watching" : "NOT watching",
      nodes.last_error().empty() ? "" : absl::StrCat(" (", nodes.last_error(), ")"), "\n");
  if (nodes.nodes().empty()) return out + "no other members\n";
  absl::StrAppendFormat(&out, "%-14s %-21s %-12s %-19s %-9s %-16s %s\n", "NAME", "ADDRESS", "STATE",
                        "JOINED", "CONNECTED", "INCARNATION", "VERSION");
  for (const auto& n : nodes.nodes()) {
    absl::StrAppendFormat(&out, "%-14s %-21s %-12s %-19s %-9s %016x %s (wire %d)\n", n.name(),
                          n.address(), n.state(), FormatUnixMs(n.joined_unix_ms()),
                          n.connected() ? "yes" : "no", n.incarnation(), n.version(),
                          n.wire_version());
  }
  return out;
}

std::string RenderPing(const std::string& node, uint64_t size, const v1::PingResponse& ping) {
  return absl::StrFormat(
      "%s: %d round trips of %d bytes: min %.1f us, median %.1f us, p99 %.1f us, max %.1f us\n",
      node, ping.rtt_us_size(), size, ping.min_us(), ping.median_us(), ping.p99_us(),
      ping.max_us());
}

}  // namespace axon::ctl
