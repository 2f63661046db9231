// call-bench: axon's calls against the bare messages they are made of and
// against torch.distributed.rpc (TensorPipe), in one run. An echo handler
// answers with the request's tensor (uint8 of each size, host or GPU);
// each row has the sequential round trip (p50, p99), the rate with many
// calls in flight, the bare message ping-pong of the same bytes through the
// same daemons, the UCX threads' heap allocations per call, and TensorPipe's
// round trip and rate for the same tensor where PyTorch is installed.
// Two daemons are started on loopback: "local" calls stay on one of them,
// "remote" calls cross to the other. Prints a table; --json writes JSON.
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/call_bench/workload.h"
#include "client/axonctl/admin_client.h"
#include "client/tools/local_cluster.h"
#include "common/cuda/driver.h"

namespace axon::bench {
namespace {

struct Options {
  bool quick = false;
  int runs = 3;
  int calls = 1000, window = 200;
  int sustained_calls = 20000;  // host rows; 0: none
  std::vector<std::string> placements = {"local", "remote"};
  std::vector<uint64_t> host_sizes = {64, 4096, 65536};
  std::vector<uint64_t> gpu_sizes = {1 << 20, 64 << 20};
  std::string axond, run_dir = "run/call-bench", json;
  std::string tensorpipe = "auto";  // auto, off
  std::string python = "python3";
  std::vector<std::string> daemon_sets;  // --set KEY=VALUE for both daemons
};

struct Row {
  std::string placement, memory;
  uint64_t size = 0;
  double rt_p50 = 0, rt_p99 = 0, rate = 0;        // medians over runs
  double sustained_rate = 0;                      // 0: not measured
  double burst_first_reply_us = 0;                // the rate's first reply, from its start
  std::vector<double> rate_runs, sustained_runs;  // each run's, in order: how far they spread
  double bare_rt_p50 = 0;
  double allocations_per_call = -1;                 // both daemons' UCX threads; -1: not counted
  double client_allocations_per_call = -1;          // the clients' threads, rate part
  double busy_caller_us = -1, busy_server_us = -1;  // UCX thread busy per call, rate part
  double tp_rt_p50 = 0, tp_rate = 0;                // TensorPipe (0: not measured)
  std::string note;
};

double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

// For absl::StrJoin: a rate as a whole number.
void Rounded(std::string* out, double v) { absl::StrAppendFormat(out, "%.0f", v); }

int Iterations(uint64_t size, bool quick) {
  const int n = size <= 65536 ? 2000 : size <= (4 << 20) ? 200 : 20;
  return quick ? std::max(n / 10, 5) : n;
}

// Heap allocations of both daemons' UCX threads.
absl::StatusOr<uint64_t> Allocations(ctl::AdminClient& a, ctl::AdminClient& b) {
  auto sa = a.Stats();
  auto sb = b.Stats();
  if (!sa.ok()) return sa.status();
  if (!sb.ok()) return sb.status();
  return sa->ucx_thread_allocations() + sb->ucx_thread_allocations();
}

// Seconds the UCX thread of the daemon behind `admin` has been busy.
double BusySeconds(ctl::AdminClient& admin) {
  auto stats = admin.Stats();
  return stats.ok() ? stats->ucx_thread_busy_seconds() : 0;
}

// TensorPipe's rows from tensorpipe_rpc.py, by (memory, size): round trip
// p50 and calls/s. Empty with the reason when it could not run.
std::map<std::pair<std::string, uint64_t>, std::pair<double, double>> RunTensorPipe(
    const Options& o, const std::string& script, bool gpu, std::string& why) {
  std::map<std::pair<std::string, uint64_t>, std::pair<double, double>> rows;
  const std::string out = absl::StrCat(o.run_dir, "/tensorpipe.json");
  std::vector<std::string> sizes;
  for (uint64_t s : o.host_sizes) sizes.push_back(absl::StrCat("cpu:", s));
  if (gpu) {
    for (uint64_t s : o.gpu_sizes) sizes.push_back(absl::StrCat("cuda:", s));
  }
  const std::string command =
      absl::StrCat(o.python, " ", script, " --tensors ", absl::StrJoin(sizes, ","), " --calls ",
                   o.calls, " --window ", o.window, " --runs ", o.runs, o.quick ? " --quick" : "",
                   " --out ", out, " > ", o.run_dir, "/tensorpipe.log 2>&1");
  if (std::system(command.c_str()) != 0) {
    why = absl::StrCat("TensorPipe not measured: see ", o.run_dir, "/tensorpipe.log");
    return rows;
  }
  std::ifstream in(out);
  std::string line;
  // One row per line: memory size rt_p50_us calls_per_s
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string memory;
    uint64_t size;
    double rt, rate;
    if (fields >> memory >> size >> rt >> rate) rows[{memory, size}] = {rt, rate};
  }
  return rows;
}

std::string Json(const std::vector<Row>& rows, const Options& o) {
  utsname u{};
  uname(&u);
  std::string out = absl::StrFormat(
      "{\n  \"machine\": \"%s %s, %d cores\",\n  \"calls\": %d,\n  \"window\": %d,\n"
      "  \"runs\": %d,\n  \"rows\": [\n",
      u.sysname, u.machine, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)), o.calls, o.window,
      o.runs);
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    absl::StrAppendFormat(
        &out,
        "    {\"placement\": \"%s\", \"memory\": \"%s\", \"size\": %d, \"round_trip_us\": "
        "{\"p50\": %.2f, \"p99\": %.2f}, \"calls_per_s\": %.0f, \"sustained_calls_per_s\": %.0f, "
        "\"calls_per_s_runs\": [%s], \"sustained_calls_per_s_runs\": [%s], "
        "\"burst_first_reply_us\": %.1f, "
        "\"bare_round_trip_us\": %.2f, "
        "\"round_trip_vs_bare\": %.3f, \"daemon_allocations_per_call\": %.3f, "
        "\"client_allocations_per_call\": %.2f, "
        "\"ucx_thread_busy_us_per_call\": {\"caller_daemon\": %.2f, \"server_daemon\": %.2f}, "
        "\"tensorpipe\": {\"round_trip_us\": %.2f, \"calls_per_s\": %.0f}, \"note\": \"%s\"}%s\n",
        r.placement, r.memory, r.size, r.rt_p50, r.rt_p99, r.rate, r.sustained_rate,
        absl::StrJoin(r.rate_runs, ", ", Rounded), absl::StrJoin(r.sustained_runs, ", ", Rounded),
        r.burst_first_reply_us, r.bare_rt_p50, r.bare_rt_p50 > 0 ? r.rt_p50 / r.bare_rt_p50 : 0,
        r.allocations_per_call, r.client_allocations_per_call, r.busy_caller_us, r.busy_server_us,
        r.tp_rt_p50, r.tp_rate, r.note, i + 1 < rows.size() ? "," : "");
  }
  out += "  ]\n}\n";
  return out;
}

void PrintTable(const std::vector<Row>& rows, const Options& o) {
  std::cout << absl::StrFormat(
      "call-bench: echo calls, %d calls with %d in flight for the rate (sust/s: %d calls); "
      "medians of %d runs\n",
      o.calls, o.window, o.sustained_calls, o.runs);
  std::cout << absl::StrFormat(
      "%-7s %-5s %10s | %9s %9s %10s %8s | %9s %6s | %7s %7s %11s | %9s %10s %7s\n", "where", "mem",
      "size", "rt p50", "rt p99", "calls/s", "sust/s", "bare rt", "x bare", "alloc/c", "clnt/c",
      "busy/c a b", "tp rt", "tp calls/s", "x tp");
  for (const Row& r : rows) {
    auto us = [](double v) { return v > 0 ? absl::StrFormat("%.1fus", v) : std::string("-"); };
    std::cout << absl::StrFormat(
        "%-7s %-5s %10d | %9s %9s %10.0f %8s | %9s %6s | %7s %7s %11s | %9s %10s %7s%s\n",
        r.placement, r.memory, r.size, us(r.rt_p50), us(r.rt_p99), r.rate,
        r.sustained_rate > 0 ? absl::StrFormat("%.0f", r.sustained_rate) : std::string("-"),
        us(r.bare_rt_p50),
        r.bare_rt_p50 > 0 ? absl::StrFormat("%.2f", r.rt_p50 / r.bare_rt_p50) : "-",
        r.allocations_per_call >= 0 ? absl::StrFormat("%.2f", r.allocations_per_call) : "-",
        r.client_allocations_per_call >= 0 ? absl::StrFormat("%.1f", r.client_allocations_per_call)
                                           : "-",
        r.busy_caller_us >= 0 ? absl::StrFormat("%.1f %.1f", r.busy_caller_us, r.busy_server_us)
                              : std::string("-"),
        us(r.tp_rt_p50), r.tp_rate > 0 ? absl::StrFormat("%.0f", r.tp_rate) : "-",
        r.tp_rate > 0 ? absl::StrFormat("%.2f", r.rate / r.tp_rate) : "-",
        r.note.empty() ? "" : "  (" + r.note + ")");
  }
  std::cout
      << "rt: call round trip (request and reply each carry the tensor); bare rt: the same "
         "bytes as two messages; sust/s: the rate over the longer run; x bare = rt / bare rt; "
         "alloc/c: heap allocations of both "
         "daemons' UCX threads per call; clnt/c: those of the caller's and the server's client "
         "threads (this process) per call while the rate ran; busy/c: microseconds per call the "
         "caller's (a) and the "
         "server's (b) daemon's UCX thread was busy while the rate ran; x tp: calls/s "
         "against TensorPipe's\n";
}

int Main(int argc, char** argv) {
  Options o;
  CLI::App app{"call-bench: axon calls against bare messages and torch.distributed.rpc"};
  app.add_flag("--quick", o.quick, "fewer iterations");
  app.add_option("--runs", o.runs, "runs per row (the table shows medians)");
  app.add_option("--calls", o.calls, "calls per rate measurement");
  app.add_option("--sustained-calls", o.sustained_calls,
                 "calls per sustained rate measurement (host rows; 0: none)");
  app.add_option("--window", o.window, "calls in flight for the rate");
  app.add_option("--placements", o.placements, "local, remote")->delimiter(',');
  app.add_option("--host-sizes", o.host_sizes, "host tensor sizes")->delimiter(',');
  app.add_option("--gpu-sizes", o.gpu_sizes,
                 "GPU tensor sizes (with a CUDA device); none: no GPU rows")
      ->delimiter(',')
      ->expected(0, CLI::detail::expected_max_vector_size);
  app.add_option("--axond", o.axond, "the axond binary (default: beside this build)");
  app.add_option("--run-dir", o.run_dir, "sockets and logs");
  app.add_option("--json", o.json, "write the rows as JSON here");
  app.add_option("--tensorpipe", o.tensorpipe, "auto (when PyTorch imports) or off");
  app.add_option("--python", o.python, "the Python with PyTorch");
  app.add_option("--set", o.daemon_sets,
                 "KEY=VALUE for the daemons it starts, as axond --set (repeatable), e.g. "
                 "engine.shards=4");
  CLI11_PARSE(app, argc, argv);
  std::erase(o.gpu_sizes, 0);  // `--gpu-sizes` alone: none

  tools::LocalCluster cluster(o.run_dir, o.axond, o.daemon_sets);
  if (auto st = cluster.Start("bench"); !st.ok()) {
    std::cerr << "call-bench: " << st << "\n";
    return 1;
  }
  std::cerr << "call-bench: daemons up: " << cluster.a().log << ", " << cluster.b().log << "\n";
  auto caller = Client::Connect({.socket_path = cluster.a().socket, .client_name = "caller"});
  auto local = Client::Connect({.socket_path = cluster.a().socket, .client_name = "local"});
  auto remote = Client::Connect({.socket_path = cluster.b().socket, .client_name = "remote"});
  if (!caller.ok() || !local.ok() || !remote.ok()) {
    const absl::Status st = !caller.ok()  ? caller.status()
                            : !local.ok() ? local.status()
                                          : remote.status();
    std::cerr << "call-bench: attach failed: " << st << "\n";
    return 1;
  }
  (void)(*caller)->BindEndpoint("caller");
  std::vector<std::unique_ptr<Server>> servers;
  for (Client* c : {local->get(), remote->get()}) {
    (void)c->BindEndpoint("echo");
    (void)c->BindEndpoint("pong");
    auto s = std::make_unique<Server>(*c, "echo", ServerOptions{.concurrency = 4});
    s->Handle("echo", [](const Request& r) -> absl::StatusOr<Reply> {
      return Reply{.tensors = r.tensors};  // back where it landed, no copy
    });
    if (auto st = s->Start(); !st.ok()) {
      std::cerr << "call-bench: serving: " << st << "\n";
      return 1;
    }
    servers.push_back(std::move(s));
  }
  ctl::AdminClient admin_a(cluster.a().socket, std::chrono::seconds(10));
  ctl::AdminClient admin_b(cluster.b().socket, std::chrono::seconds(10));
  const bool gpu = cuda::Usable().ok();
  if (auto st = ctl::WaitForPeersUp(admin_a, admin_b); !st.ok()) {
    std::cerr << "call-bench: " << st << "; see " << cluster.a().log << " and " << cluster.b().log
              << "\n";
    return 1;
  }
  std::cerr << "call-bench: the daemons see each other\n";

  std::vector<Row> rows;
  for (const std::string& placement : o.placements) {
    Client* server = placement == "local" ? local->get() : remote->get();
    const std::string node = server->node_name();
    ctl::AdminClient& server_admin = placement == "local" ? admin_a : admin_b;
    Endpoints e{.caller = caller->get(),
                .server = server,
                .echo = node + "/echo",
                .pong = node + "/pong",
                .daemon_busy = [&] {
                  return std::pair{BusySeconds(admin_a), BusySeconds(server_admin)};
                }};
    std::vector<std::pair<std::string, uint64_t>> grid;
    for (uint64_t s : o.host_sizes) grid.emplace_back("host", s);
    for (uint64_t s : o.gpu_sizes) grid.emplace_back("cuda", s);
    for (const auto& [memory, size] : grid) {
      Row row{.placement = placement, .memory = memory, .size = size};
      if (memory == "cuda" && !gpu) {
        row.note = "no CUDA device";
        rows.push_back(row);
        continue;
      }
      std::cerr << absl::StrFormat("call-bench: %s %s %d ...\n", placement, memory, size);
      const int iterations = Iterations(size, o.quick);
      const int calls = size > (4 << 20) ? std::max(o.calls / 20, 20) : o.calls;
      const int window = size > (4 << 20) ? std::min(o.window, 8) : o.window;
      std::vector<double> p50, p99, rate, sustained_rate, first_reply, bare, allocations, busy_a,
          busy_b, client_allocations;
      for (int run = 0; run < o.runs; ++run) {
        auto before = Allocations(admin_a, admin_b);
        const int sustained = memory == "cuda" || o.quick ? 0 : o.sustained_calls;
        auto sample = MeasureCalls(e, size, memory == "cuda", iterations, calls, window, sustained);
        auto after = Allocations(admin_a, admin_b);
        if (!sample.ok()) {
          row.note = std::string(sample.status().message());
          break;
        }
        p50.push_back(Percentile(sample->round_trips_us, 0.5));
        p99.push_back(Percentile(sample->round_trips_us, 0.99));
        rate.push_back(sample->calls_per_s);
        sustained_rate.push_back(sample->sustained_calls_per_s);
        first_reply.push_back(sample->burst_first_reply_us);
        busy_a.push_back(sample->caller_daemon_busy_us);
        busy_b.push_back(sample->server_daemon_busy_us);
        if (sample->client_allocations >= 0) {
          client_allocations.push_back(sample->client_allocations);
        }
        if (before.ok() && after.ok()) {
          allocations.push_back(static_cast<double>(*after - *before) /
                                static_cast<double>(sample->calls + sample->round_trips_us.size()));
        }
        std::cerr << "call-bench:   calls done, ping-pong ...\n";
        auto trips = MeasurePingPong(e, size, memory == "cuda", iterations);
        if (trips.ok()) bare.push_back(Percentile(*trips, 0.5));
      }
      row.rt_p50 = Median(p50);
      row.rt_p99 = Median(p99);
      row.rate = Median(rate);
      row.sustained_rate = Median(sustained_rate);
      row.rate_runs = rate;
      if (row.sustained_rate > 0) row.sustained_runs = sustained_rate;
      row.burst_first_reply_us = Median(first_reply);
      if (!busy_a.empty()) {
        row.busy_caller_us = Median(busy_a);
        row.busy_server_us = Median(busy_b);
      }
      row.bare_rt_p50 = Median(bare);
      if (!allocations.empty()) row.allocations_per_call = Median(allocations);
      if (!client_allocations.empty()) {
        row.client_allocations_per_call = Median(client_allocations);
      }
      rows.push_back(row);
      std::cerr << absl::StrFormat(
          "call-bench: %s %s %d: rt %.1f us, %.0f calls/s (runs: %s; first reply of the burst "
          "after %.0f us)\n",
          placement, memory, size, row.rt_p50, row.rate, absl::StrJoin(rate, " ", Rounded),
          row.burst_first_reply_us);
    }
  }
  // TensorPipe runs its two processes on one host: compare it with the
  // remote rows (two daemons), the closer match to two processes.
  if (o.tensorpipe != "off") {
    const std::string self = argv[0];
    const std::string script = self.substr(0, self.find_last_of('/') + 1) + "tensorpipe_rpc.py";
    std::string why;
    auto tp = RunTensorPipe(o, script, gpu, why);
    for (Row& r : rows) {
      auto it = tp.find({r.memory == "host" ? "cpu" : "cuda", r.size});
      if (it != tp.end() && r.placement == "remote") {
        r.tp_rt_p50 = it->second.first;
        r.tp_rate = it->second.second;
      }
    }
    if (!why.empty()) std::cerr << "call-bench: " << why << "\n";
  }
  PrintTable(rows, o);
  const std::string json = Json(rows, o);
  std::cout << json;
  if (!o.json.empty()) std::ofstream(o.json) << json;
  // A row that could not be measured (other than for want of a GPU) fails
  // the run, so that CI notices a broken path.
  for (const Row& r : rows) {
    if (r.rate <= 0 && r.note != "no CUDA device") {
      std::cerr << "call-bench: " << r.placement << " " << r.memory << " " << r.size
                << " not measured: " << r.note << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace axon::bench

int main(int argc, char** argv) { return axon::bench::Main(argc, argv); }
