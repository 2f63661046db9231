// control_path_bench: the per-message path between a client and its daemon.
// Measures a round trip through the shared-memory rings (Client::PingDaemon)
// against the baseline it replaces, a unary gRPC call on the same Unix
// socket to the same daemon (Admin/ListPeers, which does no work), in one run.
// Prints a table and, with --json PATH, writes JSON.
//
//   control_path_bench --socket /run/axon/axond.sock [--count 20000] [--runs 5]
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "absl/strings/str_format.h"
#include "axon/client.h"
#include "axon/v1/admin.grpc.pb.h"
#include "common/defaults.h"
#include "common/rpc/channel.h"

namespace {

struct Summary {
  double min_us, p50_us, p99_us;
};

Summary Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))];
  };
  return {us.front(), at(0.5), at(0.99)};
}

template <typename Fn>
std::vector<double> Time(int count, Fn fn) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (!fn()) {
      std::fprintf(stderr, "control_path_bench: a round trip failed\n");
      std::exit(1);
    }
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  return us;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Round trips client -> axond -> client: shared-memory rings vs gRPC on the UDS."};
  std::string socket = axon::DefaultSocketPath();
  int count = 20000, runs = 5;
  std::string json_path;
  app.add_option("--socket", socket, "axond's control socket")->capture_default_str();
  app.add_option("--count", count, "Round trips per run")->check(CLI::PositiveNumber);
  app.add_option("--runs", runs, "Runs; the table shows medians over runs")
      ->check(CLI::PositiveNumber);
  app.add_option("--json", json_path, "Also write the results as JSON to PATH");
  CLI11_PARSE(app, argc, argv);

  auto client = axon::Client::Connect({.socket_path = socket, .client_name = "control_path_bench"});
  if (!client.ok()) {
    std::fprintf(stderr, "control_path_bench: %s\n", client.status().ToString().c_str());
    return 1;
  }
  auto stub = axon::v1::Admin::NewStub(axon::rpc::MakeControlChannel(socket));
  auto grpc_call = [&] {
    grpc::ClientContext context;
    axon::v1::ListPeersRequest request;
    axon::v1::ListPeersResponse response;
    return stub->ListPeers(&context, request, &response).ok();
  };
  auto ring_call = [&] { return (*client)->PingDaemon().ok(); };
  Time(1000, ring_call);  // warm up both paths
  Time(200, grpc_call);

  std::vector<double> ring_p50, ring_p99, ring_min, grpc_p50, grpc_p99, grpc_min;
  for (int r = 0; r < runs; ++r) {
    const Summary ring = Summarize(Time(count, ring_call));
    const Summary grpc = Summarize(Time(std::max(1, count / 10), grpc_call));
    ring_min.push_back(ring.min_us), ring_p50.push_back(ring.p50_us),
        ring_p99.push_back(ring.p99_us);
    grpc_min.push_back(grpc.min_us), grpc_p50.push_back(grpc.p50_us),
        grpc_p99.push_back(grpc.p99_us);
    std::fprintf(stderr, "run %d/%d done\n", r + 1, runs);
  }
  const double ratio = Median(grpc_p50) / Median(ring_p50);
  std::printf("%-26s %10s %10s %10s\n", "round trip (median of runs)", "min us", "p50 us",
              "p99 us");
  std::printf("%-26s %10.2f %10.2f %10.2f\n", "rings (PingDaemon)", Median(ring_min),
              Median(ring_p50), Median(ring_p99));
  std::printf("%-26s %10.2f %10.2f %10.2f\n", "gRPC unary on the UDS", Median(grpc_min),
              Median(grpc_p50), Median(grpc_p99));
  std::printf("gRPC p50 / rings p50: %.1fx\n", ratio);
  const std::string json = absl::StrFormat(
      "{\"count\": %d, \"runs\": %d, \"rings_us\": {\"min\": %.3f, \"p50\": %.3f, \"p99\": %.3f}, "
      "\"grpc_us\": {\"min\": %.3f, \"p50\": %.3f, \"p99\": %.3f}, \"grpc_over_rings_p50\": "
      "%.2f}\n",
      count, runs, Median(ring_min), Median(ring_p50), Median(ring_p99), Median(grpc_min),
      Median(grpc_p50), Median(grpc_p99), ratio);
  std::printf("%s", json.c_str());
  if (!json_path.empty()) std::ofstream(json_path) << json;
  return 0;
}
