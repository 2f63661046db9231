// axon-bench: where axon stands against the raw transport. Starts two local
// daemons (or uses running ones), connects client pairs, and measures
// one-way latency, message rate and bandwidth, same node and across the two
// daemons, each row next to ucx_perftest from the same UCX on the same
// transports at the same size, in the same run. Prints a table; writes JSON
// (--json) and an SVG plot (--plot). --quick finishes in under a minute on a
// 2-core machine. --memory cuda adds GPU rows: it runs gpu-bench (built
// beside it where the CUDA toolkit is) and folds its rows in (gpu_rows.h).
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/axon_bench/baseline.h"
#include "bench/axon_bench/gpu_rows.h"
#include "bench/axon_bench/report.h"
#include "bench/axon_bench/workload.h"
#include "client/axonctl/admin_client.h"
#include "client/tools/local_cluster.h"

#ifndef AXON_BENCH_PERFTEST
#define AXON_BENCH_PERFTEST ""
#endif
#ifndef AXON_BENCH_UCX_LIBDIR
#define AXON_BENCH_UCX_LIBDIR ""
#endif

namespace axon::bench {
namespace {

struct Options {
  bool quick = false;
  std::string json, plot;
  std::vector<std::string> placements = {"local", "remote"};
  std::vector<size_t> sizes;
  int pairs = 1;
  bool place_pairs = true;
  int runs = 3;
  std::string socket_a, socket_b;  // running daemons; empty: start two
  std::string axond, perftest = AXON_BENCH_PERFTEST, ucx_libdir = AXON_BENCH_UCX_LIBDIR;
  std::string run_dir = "run/bench";
  bool baseline = true;
  std::vector<std::string> memory = {"host"};
  std::string gpu_bench;  // empty: next to this program
};

std::vector<size_t> DefaultSizes(bool quick, size_t eager_limit) {
  std::vector<size_t> sizes;
  if (quick) {
    sizes = {8, 128, 2048, eager_limit, 32768, 512 << 10, 8 << 20};
  } else {
    for (size_t s = 8; s <= (size_t{512} << 20); s *= 4) sizes.push_back(s);
    sizes.push_back(eager_limit);
    sizes.push_back(size_t{1} << 30);
  }
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

int Window(size_t size) { return size <= (64 << 10) ? 64 : size <= (4 << 20) ? 16 : 2; }

int StreamCount(size_t size, bool quick) {
  const double budget = quick ? 64e6 : 1e9;  // bytes per run
  const int cap = quick ? 20000 : 200000;
  return std::clamp(static_cast<int>(budget / static_cast<double>(std::max<size_t>(size, 64))),
                    quick ? 8 : 16, cap);
}

int LatencyIterations(size_t size, bool quick) {
  if (size >= (64 << 20)) return quick ? 3 : 10;
  if (size >= (1 << 20)) return quick ? 20 : 100;
  return quick ? 300 : 3000;
}

// One thread's memcpy of `size` bytes between two buffers of this process,
// pages touched first: what the local host rows compare against.
double MemcpyGbps(size_t size) {
  std::vector<uint8_t> from(size, 1), to(size, 0);
  std::memcpy(to.data(), from.data(), size);  // warm
  const int times = static_cast<int>(std::clamp<size_t>((size_t{512} << 20) / size, 3, 256));
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < times; ++i) {
    from[static_cast<size_t>(i) % size] = static_cast<uint8_t>(i);  // not one copy optimised away
    std::memcpy(to.data(), from.data(), size);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(size) * times / s / 1e9;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A daemon's UCX thread busy time so far (`axonctl stats`), in seconds; a
// negative value when the daemon does not answer.
double LoopBusySeconds(ctl::AdminClient& admin) {
  auto stats = admin.Stats();
  return stats.ok() ? stats->ucx_thread_busy_seconds() : -1;
}

std::string Machine() {
  utsname u{};
  ::uname(&u);
  return absl::StrCat(u.nodename, " ", u.sysname, " ", u.release, " ", u.machine, ", ",
                      std::thread::hardware_concurrency(), " cores");
}

int Main(int argc, char** argv) {
  CLI::App app{"axon-bench: axon against ucx_perftest, same node and across two daemons"};
  Options o;
  std::string placements = "local,remote", sizes;
  size_t eager_limit = 16384;
  app.add_flag("--quick", o.quick, "a short run (under 60 s on 2 cores)");
  app.add_option("--json", o.json, "write the results as JSON here");
  app.add_option("--plot", o.plot, "write latency and bandwidth curves as SVG here");
  std::string memory = "host";
  app.add_option("--memory", memory,
                 "comma-separated: host, cuda (GPU rows: runs gpu-bench, which has its own "
                 "sizes, 1 MiB to 1 GiB)")
      ->capture_default_str();
  app.add_option("--gpu-bench", o.gpu_bench,
                 "the gpu-bench for --memory cuda (default: next to this program)");
  app.add_option("--placements", placements, "comma-separated: local, remote")
      ->capture_default_str();
  app.add_option("--sizes", sizes, "comma-separated message sizes (default: 8 B to 1 GiB)");
  app.add_option("--pairs", o.pairs, "also stream with 2..N client pairs at once")
      ->capture_default_str();
  app.add_option("--place-pairs", o.place_pairs,
                 "the two clients of each pair name one placement, so one engine shard of a "
                 "daemon serves both (engine.shards above 1)")
      ->capture_default_str();
  app.add_option("--runs", o.runs, "runs per measurement; the median is reported")
      ->capture_default_str();
  app.add_option("--socket-a", o.socket_a, "use this running daemon as node a");
  app.add_option("--socket-b", o.socket_b, "and this one as node b");
  app.add_option("--axond", o.axond, "the axond to start (default: next to this program)");
  app.add_option("--perftest", o.perftest, "ucx_perftest of the same UCX")->capture_default_str();
  app.add_option("--ucx-libdir", o.ucx_libdir, "LD_LIBRARY_PATH for ucx_perftest");
  app.add_option("--run-dir", o.run_dir, "sockets and logs of the daemons")->capture_default_str();
  app.add_option("--eager-limit", eager_limit, "peers.eager_limit of the daemons it starts")
      ->capture_default_str();
  std::vector<std::string> daemon_sets;
  app.add_option("--set", daemon_sets,
                 "KEY=VALUE for the daemons it starts, as axond --set (repeatable), e.g. "
                 "engine.copy_threads=1");
  CLI11_PARSE(app, argc, argv);
  if (o.quick && app.count("--runs") == 0) o.runs = 1;
  o.placements = absl::StrSplit(placements, ',', absl::SkipEmpty());
  for (const std::string& p : o.placements) {
    if (p != "local" && p != "remote") {
      std::cerr << "axon-bench: --placements takes local and/or remote, not '" << p << "'\n";
      return 2;
    }
  }
  o.memory = absl::StrSplit(memory, ',', absl::SkipEmpty());
  for (const std::string& m : o.memory) {
    if (m != "host" && m != "cuda") {
      std::cerr << "axon-bench: --memory takes host and/or cuda, not '" << m << "'\n";
      return 2;
    }
  }
  const bool cuda = std::find(o.memory.begin(), o.memory.end(), "cuda") != o.memory.end();
  if (std::find(o.memory.begin(), o.memory.end(), "host") == o.memory.end()) o.placements.clear();
  if (!sizes.empty()) {
    for (absl::string_view s : absl::StrSplit(sizes, ',', absl::SkipEmpty())) {
      o.sizes.push_back(std::stoull(std::string(s)));
    }
  } else {
    o.sizes = DefaultSizes(o.quick, eager_limit);
  }

  daemon_sets.insert(daemon_sets.begin(), absl::StrCat("peers.eager_limit=", eager_limit));
  tools::LocalCluster cluster(o.run_dir, o.axond, daemon_sets);
  if (o.socket_a.empty()) {
    if (auto st = cluster.Start("bench"); !st.ok()) {
      std::cerr << "axon-bench: " << st.message() << "\n";
      return 1;
    }
    o.socket_a = cluster.a().socket;
    o.socket_b = cluster.b().socket;
  }
  Run run{.machine = Machine()};
  for (int i = 0; i < argc; ++i) run.command += (i ? " " : "") + std::string(argv[i]);
  {
    ctl::AdminClient admin(o.socket_a, std::chrono::seconds(5));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    absl::StatusOr<v1::StatusResponse> status = admin.Status();
    while (!status.ok() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      status = admin.Status();
    }
    if (!status.ok()) {
      std::cerr << "axon-bench: cannot reach axond at " << o.socket_a << ": " << status.status()
                << "\n";
      return 1;
    }
    run.ucx_version = status->ucx().version();
  }
  const size_t max_size = *std::max_element(o.sizes.begin(), o.sizes.end());
  Perftest perftest(o.perftest, o.ucx_libdir);
  if (!perftest.available()) std::cerr << "axon-bench: no ucx_perftest: no baseline\n";

  // How busy each daemon's UCX thread was during a stream: it says which one
  // limits the rate (near 1) and which has room.
  ctl::AdminClient admin_a(o.socket_a, std::chrono::seconds(5));
  ctl::AdminClient admin_b(o.socket_b, std::chrono::seconds(5));
  const int total = static_cast<int>(o.placements.size() * o.sizes.size());
  int done = 0;
  const auto started = std::chrono::steady_clock::now();
  for (const std::string& placement : o.placements) {
    const bool remote = placement == "remote";
    const std::string& receive_socket = remote ? o.socket_b : o.socket_a;
    std::vector<Pair> pairs;
    for (int i = 0; i < o.pairs; ++i) {
      // RunStreams spreads small messages over up to 1 MiB of the buffers.
      const size_t bytes = std::max<size_t>(max_size * 2, size_t{1} << 20);
      auto pair = MakePair(o.socket_a, receive_socket, static_cast<int>(i + (remote ? 100 : 0)),
                           bytes, o.place_pairs);
      if (!pair.ok()) {
        std::cerr << "axon-bench: " << pair.status() << "\n";
        return 1;
      }
      pairs.push_back(*std::move(pair));
    }
    // Wait until the daemons see each other (a send fails UNAVAILABLE until then).
    if (remote) {
      if (auto st = WaitUntilConnected(pairs[0], 100); !st.ok()) {
        std::cerr << "axon-bench: " << st << "\n";
        return 1;
      }
    }
    const std::string tls = remote ? PeerTransports(o.socket_a) : "sm";
    for (size_t size : o.sizes) {
      std::cerr
          << absl::StrFormat(
                 "\r[%d/%d] %-6s %10d B  %.0fs elapsed   ", ++done, total, placement, size,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count())
          << std::flush;
      Row row{
          .placement = placement, .size = size, .baseline_tls = perftest.available() ? tls : ""};
      std::vector<double> mins, p50s, p99s, rates, gbps, base_lat, base_rate, base_gbps;
      std::vector<double> busy_a, busy_b, memcpy_gbps;
      const int window = Window(size);
      const int count = StreamCount(size, o.quick);
      for (int r = 0; r < o.runs; ++r) {
        if (size <= (size_t{64} << 20)) {
          auto lat = PingPong(pairs[0], size, LatencyIterations(size, o.quick));
          if (!lat.ok()) {
            row.note = std::string(lat.status().message());
            break;
          }
          mins.push_back(lat->min_us), p50s.push_back(lat->p50_us), p99s.push_back(lat->p99_us);
        }
        std::vector<Pair> one;
        one.push_back(std::move(pairs[0]));
        const double a0 = LoopBusySeconds(admin_a), b0 = remote ? LoopBusySeconds(admin_b) : -1;
        const auto t0 = std::chrono::steady_clock::now();
        auto stream = RunStreams(one, size, count, window);
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        pairs[0] = std::move(one[0]);
        if (!stream.ok()) {
          row.note = std::string(stream.status().message());
          break;
        }
        rates.push_back(stream->messages_per_s), gbps.push_back(stream->gbytes_per_s);
        if (const double a1 = LoopBusySeconds(admin_a); a0 >= 0 && a1 >= 0) {
          busy_a.push_back((a1 - a0) / wall);
        }
        if (const double b1 = remote ? LoopBusySeconds(admin_b) : -1; b0 >= 0 && b1 >= 0) {
          busy_b.push_back((b1 - b0) / wall);
        }
        if (!remote && size >= (size_t{1} << 20)) memcpy_gbps.push_back(MemcpyGbps(size));
        if (perftest.available()) {
          if (size <= (size_t{64} << 20)) {
            auto b = perftest.Run("ucp_am_lat", tls, size, LatencyIterations(size, o.quick), 1);
            if (b.ok())
              base_lat.push_back(b->latency_us);
            else
              row.note = std::string(b.status().message()).substr(0, 120);
          }
          auto b = perftest.Run("ucp_am_bw", tls, size, count, window);
          if (b.ok()) {
            base_rate.push_back(b->messages_per_s), base_gbps.push_back(b->gbytes_per_s);
          } else {
            row.note = std::string(b.status().message()).substr(0, 120);
          }
        }
      }
      row.lat_min_us = Median(mins), row.lat_p50_us = Median(p50s), row.lat_p99_us = Median(p99s);
      row.rate = Median(rates), row.gbps = Median(gbps);
      row.busy_a = busy_a.empty() ? -1 : Median(busy_a);
      row.busy_b = busy_b.empty() ? -1 : Median(busy_b);
      row.base_lat_us = Median(base_lat), row.base_rate = Median(base_rate);
      row.base_gbps = Median(base_gbps);
      row.memcpy_gbps = Median(memcpy_gbps);
      run.rows.push_back(row);
    }
    // Several pairs at once, at a small and a large size.
    for (int n = 2; n <= o.pairs; ++n) {
      for (size_t size : {size_t{64}, std::min(max_size, size_t{8} << 20)}) {
        std::vector<Pair> some;
        for (int i = 0; i < n; ++i) some.push_back(std::move(pairs[i]));
        auto stream = RunStreams(some, size, StreamCount(size, o.quick), Window(size));
        for (int i = 0; i < n; ++i) pairs[i] = std::move(some[i]);
        Row row{.placement = placement, .size = size, .pairs = n};
        if (stream.ok()) {
          row.rate = stream->messages_per_s, row.gbps = stream->gbytes_per_s;
        } else {
          row.note = std::string(stream.status().message());
        }
        run.rows.push_back(row);
      }
    }
  }
  std::string gpu_note;
  if (cuda) {
    std::cerr << "\r" << std::string(60, ' ') << "\rgpu-bench (GPU rows) ..." << std::flush;
    auto gpu = GpuRows({.gpu_bench = o.gpu_bench,
                        .axond = o.axond,
                        .perftest = o.perftest,
                        .ucx_libdir = o.ucx_libdir,
                        .run_dir = o.run_dir + "/gpu",
                        .runs = o.runs,
                        .quick = o.quick},
                       &gpu_note);
    if (gpu.ok()) {
      run.rows.insert(run.rows.end(), gpu->begin(), gpu->end());
    } else {
      gpu_note = std::string(gpu.status().message());
    }
  }
  std::cerr << "\r" << std::string(60, ' ') << "\r";
  std::cout << "axon-bench on " << run.machine << ", UCX " << run.ucx_version << ", medians of "
            << o.runs << " run(s)\n"
            << Table(run);
  if (!gpu_note.empty()) std::cout << "GPU rows: " << gpu_note << "\n";
  if (!o.json.empty()) {
    if (auto st = WriteFile(o.json, Json(run)); !st.ok()) std::cerr << st << "\n";
  }
  if (!o.plot.empty()) {
    if (auto st = WriteFile(o.plot, Svg(run)); !st.ok()) std::cerr << st << "\n";
  }
  std::cout << Json(run);
  return 0;
}

}  // namespace
}  // namespace axon::bench

int main(int argc, char** argv) { return axon::bench::Main(argc, argv); }
