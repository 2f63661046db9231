// axonctl: the operator's CLI for a local axond. Exit codes: 0 ok/healthy,
// 1 unhealthy, 2 cannot reach the daemon (or it refused us), each with a
// one-line reason on stderr.
#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <optional>
#include <thread>

#include "client/axonctl/admin_client.h"
#include "client/axonctl/render.h"
#include "common/defaults.h"
#include "common/version.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUnhealthy = 1;
constexpr int kExitUnreachable = 2;

struct Options {
  std::string socket;
  bool json = false;
  double timeout_s = 5;
};

int Unreachable(const Options& options, const absl::Status& status) {
  const char* what = status.code() == absl::StatusCode::kPermissionDenied
                         ? "axond refused the request"
                         : "cannot reach axond";
  std::cerr << "axonctl: " << what << " at " << options.socket << ": "
            << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
  return kExitUnreachable;
}

template <typename Response>
int Print(const Options& options, const absl::StatusOr<Response>& response,
          std::string (*render)(const Response&)) {
  if (!response.ok()) return Unreachable(options, response.status());
  std::cout << (options.json ? axon::ctl::ToJson(*response) : render(*response));
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "axonctl: look at a local axond (health, status, stats, sessions, calls, windows, peers)."};
  app.require_subcommand(1);
  Options options;
  options.socket = axon::DefaultSocketPath();
  app.add_option("-s,--socket", options.socket,
                 "Control socket of the daemon (default: $AXON_SOCKET, else /run/axon/axond.sock)")
      ->capture_default_str();
  app.add_flag("--json", options.json, "Print JSON (the proto's field names) instead of text");
  app.add_option("--timeout", options.timeout_s, "Seconds to wait for the daemon")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  auto* health = app.add_subcommand("health", "Is the daemon able to work? Exit 0 yes, 1 no");
  auto* status = app.add_subcommand("status", "What the daemon is: node, UCX, CUDA, sockets");
  auto* stats = app.add_subcommand("stats", "Counters since the daemon started");
  double watch_s = 0;
  stats->add_option("-w,--watch", watch_s, "Repeat every SECONDS until interrupted")
      ->check(CLI::PositiveNumber);
  auto* sessions = app.add_subcommand("sessions", "Client processes attached to the daemon");
  auto* calls = app.add_subcommand(
      "calls", "Call servers on this node: per endpoint and method, calls, errors, latency");
  auto* windows = app.add_subcommand(
      "windows", "Windows exposed for one-sided transfers: access, holds, operations by path");
  auto* peers = app.add_subcommand("peers", "Other daemons this one knows");
  auto* nodes = app.add_subcommand(
      "nodes", "The cluster's members in etcd: state, when they joined, whether connected");
  auto* version = app.add_subcommand("version", "Versions of axonctl and of the daemon");
  auto* ping =
      app.add_subcommand("ping", "Round trips to another daemon through UCX active messages");
  std::string ping_node;
  uint32_t ping_count = 10;
  uint64_t ping_size = 0;
  ping->add_option("node", ping_node, "Node name of the peer")->required();
  ping->add_option("-n,--count", ping_count, "Round trips")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  ping->add_option("--size", ping_size, "Payload bytes per ping (echoed back)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{16} << 20))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  axon::ctl::AdminClient client(
      options.socket, std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000)));

  if (*health) {
    auto response = client.Health();
    if (!response.ok()) return Unreachable(options, response.status());
    std::cout << (options.json ? axon::ctl::ToJson(*response) : axon::ctl::RenderHealth(*response));
    return response->status() == axon::v1::HealthResponse::SERVING ? kExitOk : kExitUnhealthy;
  }
  if (*status) return Print(options, client.Status(), &axon::ctl::RenderStatus);
  if (*sessions) return Print(options, client.ListSessions(), &axon::ctl::RenderSessions);
  if (*calls) return Print(options, client.ListSessions(), &axon::ctl::RenderCalls);
  if (*windows) return Print(options, client.ListSessions(), &axon::ctl::RenderWindows);
  if (*peers) return Print(options, client.ListPeers(), &axon::ctl::RenderPeers);
  if (*nodes) return Print(options, client.ListNodes(), &axon::ctl::RenderNodes);
  if (*ping) {
    auto response = client.Ping(ping_node, ping_count, ping_size);
    if (!response.ok()) {
      // The daemon answered, but the peer did not: not a connection problem.
      if (response.status().code() == absl::StatusCode::kUnavailable ||
          response.status().code() == absl::StatusCode::kNotFound ||
          response.status().code() == absl::StatusCode::kFailedPrecondition) {
        std::cerr << "axonctl: ping " << ping_node << ": " << response.status().message() << "\n";
        return kExitUnhealthy;
      }
      return Unreachable(options, response.status());
    }
    std::cout << (options.json ? axon::ctl::ToJson(*response)
                               : axon::ctl::RenderPing(ping_node, ping_size, *response));
    return kExitOk;
  }
  if (*stats) {
    std::optional<axon::v1::StatsResponse> previous;
    while (true) {
      auto response = client.Stats();
      if (int rc = Print(options, response, &axon::ctl::RenderStats); rc != kExitOk) return rc;
      if (previous && !options.json) std::cout << axon::ctl::RenderBusyShare(*previous, *response);
      previous = *response;
      if (watch_s <= 0) return kExitOk;
      std::cout << std::endl;
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(watch_s * 1000)));
    }
  }
  if (*version) {
    auto response = client.Status();
    if (options.json) {
      std::cout << "{\"axonctl\": \"" << axon::kVersion << "\", \"axond\": \""
                << (response.ok() ? response->version() : "") << "\"}\n";
    } else {
      std::cout << "axonctl " << axon::kVersion << "\n";
      if (response.ok()) {
        std::cout << "axond   " << response->version() << " (node " << response->node_name()
                  << ")\n";
      }
    }
    return response.ok() ? kExitOk : Unreachable(options, response.status());
  }
  return kExitOk;
}
