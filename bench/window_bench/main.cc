// window-bench: one-sided transfers against the raw copies and the raw
// network, in one run. Two daemons on loopback (node a and node b); a writer
// client on a, and an owner client exposing windows on a (local rows) and on
// b (remote rows).
//   block    64 MiB blocks written (and, remote, read), --window in flight,
//            GB/s; local against memcpy (host) or cudaMemcpy device to
//            device (GPU) in this process, remote against ucx_perftest
//            ucp_put_bw / ucp_get at 64 MiB on the daemons' transports;
//   kv       1,000 blocks of 16 KiB in one operation with one notification
//            (KV-cache-like), blocks/s until the owner has the notification;
//            local against the same 1,000 copies by memcpy or
//            cudaMemcpyAsync, remote against ucp_put_bw's message rate at
//            16 KiB;
//   notify   a 64 B host write with a notification: from Write to the
//            owner's receive of the notification, p50 us; local against a
//            64 B two-sided message through the same daemon, remote against
//            ucp_put_lat at 64 B.
// With --nixl PYTHON, the local rows also get a NIXL column: the same rows
// done by NIXL between two processes (nixl_peer.py), run after axon's.
// Remote host windows are served by RMA, or with --window-transfer frames
// as a frame per block (run both for the A/B).
// GPU rows need a CUDA device; host rows run anywhere. Each figure is the
// median of --runs runs. Prints a table; --json PATH writes the same as JSON.
#include <cuda_runtime_api.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "axon/client.h"
#include "bench/axon_bench/baseline.h"
#include "client/tools/local_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string axond, run_dir = "/tmp/axon-window-bench", json;
  std::string perftest = AXON_BENCH_PERFTEST, ucx_libdir = AXON_BENCH_UCX_LIBDIR;
  // NIXL's rows (nixl_peer.py) run by this Python, when set.
  std::string nixl_python, nixl_script = AXON_BENCH_NIXL_SCRIPT;
  // How the remote rows' host windows are served (peers.window_transfer).
  std::string window_transfer = "rma";
  int runs = 5, iterations = 20, latency_samples = 2000, window = 2;
};

struct Row {
  std::string what, memory, unit, baseline;
  double axon = 0, base = 0;
  bool lower_is_better = false;
  double nixl = 0;  // the same row done by NIXL (--nixl), 0: not measured
};

constexpr size_t kBlockBytes = 64 << 20;
constexpr size_t kKvBlocks = 1000, kKvBlock = 16384;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void Die(const std::string& what) {
  std::fprintf(stderr, "window-bench: %s\n", what.c_str());
  std::exit(1);
}

void Check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) Die(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

template <typename T>
T Ok(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(absl::StrCat(what, ": ", v.status().ToString()));
  return *std::move(v);
}

void Ok(const absl::Status& st, const char* what) {
  if (!st.ok()) Die(absl::StrCat(what, ": ", st.ToString()));
}

void Done(axon::Client& c, axon::Operation op, const char* what) {
  auto done = Ok(c.Wait(op, 60000), what);
  Ok(done.status, what);
}

// The writer, and the owner of the windows of the rows being measured.
struct Bench {
  Options o;
  axon::Client* writer = nullptr;
  axon::Client* owner = nullptr;
};

// Seconds of `fn()` run `iterations` times (then `end()` once), median of
// `runs`.
template <typename Fn, typename End = void (*)()>
double Seconds(
    const Options& o, Fn fn, End end = [] {}) {
  std::vector<double> runs;
  for (int r = 0; r < o.runs; ++r) {
    const auto start = Clock::now();
    for (int i = 0; i < o.iterations; ++i) fn();
    end();
    runs.push_back(std::chrono::duration<double>(Clock::now() - start).count() / o.iterations);
  }
  return Median(runs);
}

// GB/s of 64 MiB writes (or reads) of `into`, owned by b.owner, --window in
// flight.
double BlockRate(Bench& b, const axon::Buffer& mine, const axon::Buffer& into, bool write) {
  auto window = Ok(b.owner->Expose(into, 0, kBlockBytes), "expose");
  const axon::Block all[] = {{&mine, 0, 0, kBlockBytes}};
  std::vector<double> runs;
  for (int r = 0; r < b.o.runs; ++r) {
    std::deque<axon::Operation> in_flight;
    const auto start = Clock::now();
    for (int i = 0; i < b.o.iterations; ++i) {
      if (static_cast<int>(in_flight.size()) == b.o.window) {
        Done(*b.writer, in_flight.front(), "operation");
        in_flight.pop_front();
      }
      in_flight.push_back(Ok(
          write ? b.writer->Write("w", window, all) : b.writer->Read("w", window, all), "submit"));
    }
    for (axon::Operation op : in_flight) Done(*b.writer, op, "operation");
    runs.push_back(std::chrono::duration<double>(Clock::now() - start).count() / b.o.iterations);
  }
  Ok(b.owner->Unexpose(window), "unexpose");
  return kBlockBytes / Median(runs) / 1e9;
}

// Blocks/s of 1,000 scattered 16 KiB blocks with one notification, until
// the owner has the notification.
double KvRate(Bench& b, const axon::Buffer& from, const axon::Buffer& into) {
  auto window =
      Ok(b.owner->Expose(into, 0, kKvBlocks * kKvBlock, {.notify_endpoint = "o"}), "expose");
  auto note_into = Ok(b.owner->AllocateHost(64), "allocate");
  std::vector<axon::Block> blocks;
  // Scattered, as a cache's pages over its pool: block i to slot 7i mod 1000.
  for (size_t i = 0; i < kKvBlocks; ++i) {
    blocks.push_back({&from, i * kKvBlock, ((i * 7) % kKvBlocks) * kKvBlock, kKvBlock});
  }
  const axon::Notification note{9, "layer"};
  const double s = Seconds(b.o, [&] {
    auto got = Ok(b.owner->PostRecv("o", 9, note_into, 0, 64), "post");
    Done(*b.writer, Ok(b.writer->Write("w", window, blocks, &note), "write"), "write");
    Done(*b.owner, got, "notification");
  });
  Ok(b.owner->Unexpose(window), "unexpose");
  return kKvBlocks / s;
}

// The same 1,000 copies made here.
double KvCopyRate(const Options& o, const axon::Buffer& from, const axon::Buffer& into, bool gpu) {
  const double s = Seconds(o, [&] {
    for (size_t i = 0; i < kKvBlocks; ++i) {
      auto* to = static_cast<uint8_t*>(into.data()) + ((i * 7) % kKvBlocks) * kKvBlock;
      const auto* src = static_cast<const uint8_t*>(from.data()) + i * kKvBlock;
      if (gpu) {
        Check(cudaMemcpyAsync(to, src, kKvBlock, cudaMemcpyDeviceToDevice, nullptr), "copy");
      } else {
        std::memcpy(to, src, kKvBlock);
      }
    }
    if (gpu) Check(cudaDeviceSynchronize(), "sync");
  });
  return kKvBlocks / s;
}

// p50 us from a 64 B write (or, `message`, a 64 B send) to the owner's
// receipt of its notification (of the message).
double NotifyLatency(Bench& b, bool message) {
  auto from = Ok(b.writer->AllocateHost(4096), "allocate");
  auto into = Ok(b.owner->AllocateHost(4096), "allocate");
  auto window = Ok(b.owner->Expose(into, 0, 4096, {.notify_endpoint = "o"}), "expose");
  const std::string to = b.owner->node_name() + "/o";
  const axon::Block one[] = {{&from, 0, 0, 64}};
  const axon::Notification note{3, "n"};
  std::vector<double> us;
  for (int i = 0; i < b.o.latency_samples; ++i) {
    auto got = Ok(b.owner->PostRecv("o", 3, into, 1024, 1024), "post");
    const auto t0 = Clock::now();
    const axon::Operation sent = Ok(message ? b.writer->Send("w", to, 3, from, 0, 64)
                                            : b.writer->Write("w", window, one, &note),
                                    "submit");
    Done(*b.owner, got, "receive");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    Done(*b.writer, sent, "write");
  }
  Ok(b.owner->Unexpose(window), "unexpose");
  return Median(us);
}

// Runs nixl_peer.py with the same sizes and counts and fills each local
// row's `nixl` from its JSON (rows named alike: "write 64MiB" is "local
// write 64MiB"; NIXL's memory "cuda" is "gpu"). NIXL runs with UCX error
// handling off, its faster setting on one host (notifications over shared
// memory instead of TCP).
void AddNixl(const Options& o, bool gpu, std::vector<Row>& rows) {
  const std::string json_path = absl::StrCat(o.run_dir, "/nixl.json");
  const std::string command =
      absl::StrCat(o.nixl_python, " ", o.nixl_script, " --memory ", gpu ? "host,cuda" : "host",
                   " --runs ", o.runs, " --iterations ", o.iterations, " --window ", o.window,
                   " --latency-samples ", o.latency_samples, " --ucx-error-handling none --json ",
                   json_path, " > ", o.run_dir, "/nixl.log 2>&1");
  if (std::system(command.c_str()) != 0) {
    std::printf("window-bench: nixl_peer.py failed (see %s/nixl.log)\n", o.run_dir.c_str());
    return;
  }
  std::ifstream in(json_path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The rows' fields, in the order nixl_peer.py writes them.
  static const std::regex kRow(
      R"re("what":\s*"([^"]+)",\s*"memory":\s*"([^"]+)",\s*"unit":\s*"[^"]+",\s*"nixl":\s*([0-9.eE+-]+))re");
  int found = 0;
  for (std::sregex_iterator m(text.begin(), text.end(), kRow), end; m != end; ++m) {
    const std::string what = "local " + (*m)[1].str();
    const std::string memory = (*m)[2].str() == "cuda" ? "gpu" : (*m)[2].str();
    for (Row& r : rows) {
      if (r.what == what && r.memory == memory) {
        r.nixl = std::stod((*m)[3].str());
        ++found;
      }
    }
  }
  if (found == 0) std::printf("window-bench: no NIXL rows (see %s/nixl.log)\n", o.run_dir.c_str());
}

std::unique_ptr<axon::Buffer> Allocate(axon::Client& c, bool gpu, size_t bytes) {
  if (gpu) return std::make_unique<axon::CudaBuffer>(Ok(c.AllocateCuda(bytes), "allocate GPU"));
  return std::make_unique<axon::HostBuffer>(Ok(c.AllocateHost(bytes), "allocate"));
}

// ucx_perftest `test` at `size`, or 0 (the reason printed) when it cannot run.
axon::bench::PerftestResult Perftest(axon::bench::Perftest& perftest, const std::string& test,
                                     const std::string& tls, size_t size, int window,
                                     const std::string& memory = "host") {
  auto r = perftest.Run(test, tls, size, size >= (1 << 20) ? 200 : 20000, window, memory);
  if (!r.ok()) {
    std::printf("window-bench: %s: %s\n", test.c_str(), std::string(r.status().message()).c_str());
    return {};
  }
  return *r;
}

}  // namespace

int main(int argc, char** argv) {
  Bench b;
  Options& o = b.o;
  CLI::App app{"window-bench: one-sided transfers against the raw copies and ucx_perftest"};
  app.add_option("--axond", o.axond, "the axond binary (default: next to this build)");
  app.add_option("--run-dir", o.run_dir, "where the daemons' sockets and logs go");
  app.add_option("--runs", o.runs, "runs per figure (the median is reported)")
      ->capture_default_str();
  app.add_option("--iterations", o.iterations, "operations per run")->capture_default_str();
  app.add_option("--latency-samples", o.latency_samples, "samples of the notify rows")
      ->capture_default_str();
  app.add_option("--window", o.window, "64 MiB operations in flight in the block rows")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--perftest", o.perftest, "ucx_perftest of the same UCX (the remote baseline)")
      ->capture_default_str();
  app.add_option("--ucx-libdir", o.ucx_libdir, "LD_LIBRARY_PATH for ucx_perftest");
  app.add_option("--nixl", o.nixl_python,
                 "a Python with NIXL (nixl-cu13): runs nixl_peer.py for a NIXL column");
  app.add_option("--nixl-script", o.nixl_script, "nixl_peer.py")->capture_default_str();
  app.add_option("--json", o.json, "also write the results as JSON here");
  app.add_option("--window-transfer", o.window_transfer,
                 "how the owner's daemon serves remote host windows (peers.window_transfer)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rma", "frames"}));
  CLI11_PARSE(app, argc, argv);

  axon::tools::LocalCluster cluster(o.run_dir, o.axond,
                                    {"peers.window_transfer=" + o.window_transfer});
  Ok(cluster.Start("window-bench"), "start axond");
  auto connect = [&](const std::string& socket, const char* name, const char* endpoint) {
    auto c = Ok(axon::Client::Connect({.socket_path = socket, .client_name = name}), "connect");
    Ok(c->BindEndpoint(endpoint).status(), "bind");
    return c;
  };
  auto writer = connect(cluster.a().socket, "writer", "w");
  auto local_owner = connect(cluster.a().socket, "owner", "o");
  auto remote_owner = connect(cluster.b().socket, "owner", "o");
  b.writer = writer.get();
  int devices = 0;
  const bool gpu = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
  if (!gpu) std::printf("window-bench: no CUDA device; GPU rows left out\n");

  std::vector<Row> rows;
  // Local: against the copies made here.
  b.owner = local_owner.get();
  for (bool on_gpu : {false, true}) {
    if (on_gpu && !gpu) continue;
    const auto from_buffer = Allocate(*b.writer, on_gpu, kBlockBytes);
    const axon::Buffer& from = *from_buffer;
    const auto into_buffer = Allocate(*b.owner, on_gpu, kBlockBytes);
    const axon::Buffer& into = *into_buffer;
    if (!on_gpu) std::memset(from.data(), 1, kBlockBytes);
    const char* mem = on_gpu ? "gpu" : "host";
    const double copy =
        kBlockBytes /
        Seconds(
            o,
            [&] {
              if (on_gpu) {
                Check(cudaMemcpy(into.data(), from.data(), kBlockBytes, cudaMemcpyDeviceToDevice),
                      "copy");
              } else {
                std::memcpy(into.data(), from.data(), kBlockBytes);
              }
            },
            [&] {
              if (on_gpu) Check(cudaDeviceSynchronize(), "sync");
            }) /
        1e9;
    rows.push_back({"local write 64MiB", mem, "GB/s", on_gpu ? "cudaMemcpy D2D" : "memcpy",
                    BlockRate(b, from, into, true), copy});
    rows.push_back({"local kv 1000x16KiB+note", mem, "blocks/s",
                    on_gpu ? "1000 cudaMemcpyAsync" : "1000 memcpy", KvRate(b, from, into),
                    KvCopyRate(o, from, into, on_gpu)});
  }
  rows.push_back({"local notify 64B", "host", "us p50", "64 B message", NotifyLatency(b, false),
                  NotifyLatency(b, true), true});

  // Remote: against ucx_perftest on the transports the daemons use.
  axon::bench::Perftest perftest(o.perftest, o.ucx_libdir);
  const std::string tls = axon::bench::PeerTransports(cluster.a().socket);
  b.owner = remote_owner.get();
  for (bool on_gpu : {false, true}) {
    if (on_gpu && !gpu) continue;
    const auto mine_buffer = Allocate(*b.writer, on_gpu, kBlockBytes);
    const axon::Buffer& mine = *mine_buffer;
    const auto theirs_buffer = Allocate(*b.owner, on_gpu, kBlockBytes);
    const axon::Buffer& theirs = *theirs_buffer;
    const char* mem = on_gpu ? "gpu" : "host";
    const std::string memory = on_gpu ? "cuda" : "host";
    const std::string suffix = on_gpu ? " -m cuda" : "";
    rows.push_back(
        {"remote write 64MiB", mem, "GB/s", "ucp_put_bw 64MiB" + suffix,
         BlockRate(b, mine, theirs, true),
         Perftest(perftest, "ucp_put_bw", tls, kBlockBytes, o.window, memory).gbytes_per_s});
    rows.push_back(
        {"remote read 64MiB", mem, "GB/s", "ucp_get 64MiB" + suffix,
         BlockRate(b, mine, theirs, false),
         Perftest(perftest, "ucp_get", tls, kBlockBytes, o.window, memory).gbytes_per_s});
    rows.push_back({"remote kv 1000x16KiB+note", mem, "blocks/s", "ucp_put_bw 16KiB msg/s" + suffix,
                    KvRate(b, mine, theirs),
                    Perftest(perftest, "ucp_put_bw", tls, kKvBlock, 32, memory).messages_per_s});
  }
  rows.push_back({"remote notify 64B", "host", "us p50", "ucp_put_lat 64B", NotifyLatency(b, false),
                  Perftest(perftest, "ucp_put_lat", tls, 64, 1).latency_us, true});
  rows.push_back({"remote message 64B", "host", "us p50", "ucp_put_lat 64B", NotifyLatency(b, true),
                  rows.back().base, true});

  if (!o.nixl_python.empty()) AddNixl(o, gpu, rows);

  std::string table =
      absl::StrFormat("%-26s %-5s | %12s %12s %6s | %12s %6s  %-9s %s\n", "what", "mem", "axon",
                      "base", "ratio", "nixl", "/nixl", "unit", "baseline");
  std::string json = "{\"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    // ratio > 1: axon is better, whichever way the unit goes.
    const double ratio =
        r.lower_is_better ? (r.axon > 0 ? r.base / r.axon : 0) : (r.base > 0 ? r.axon / r.base : 0);
    // Against NIXL the same way round.
    const double vs_nixl = r.nixl <= 0 || r.axon <= 0 ? 0
                           : r.lower_is_better        ? r.nixl / r.axon
                                                      : r.axon / r.nixl;
    absl::StrAppendFormat(&table, "%-26s %-5s | %12.2f %12.2f %6.2f | %12s %6s  %-9s %s\n", r.what,
                          r.memory, r.axon, r.base, ratio,
                          r.nixl > 0 ? absl::StrFormat("%.2f", r.nixl) : "-",
                          vs_nixl > 0 ? absl::StrFormat("%.2f", vs_nixl) : "-", r.unit, r.baseline);
    absl::StrAppendFormat(&json,
                          "%s{\"what\": \"%s\", \"memory\": \"%s\", \"unit\": \"%s\", "
                          "\"axon\": %.3f, \"base\": %.3f, \"ratio\": %.3f, \"baseline\": \"%s\", "
                          "\"nixl\": %.3f, \"vs_nixl\": %.3f}",
                          i ? ", " : "", r.what, r.memory, r.unit, r.axon, r.base, ratio,
                          r.baseline, r.nixl, vs_nixl);
  }
  absl::StrAppendFormat(&json,
                        "], \"runs\": %d, \"iterations\": %d, \"window\": %d, \"tls\": \"%s\", "
                        "\"window_transfer\": \"%s\"}\n",
                        o.runs, o.iterations, o.window, tls, o.window_transfer);
  absl::StrAppendFormat(&table,
                        "medians of %d runs; %d block operations in flight; ucx_perftest on %s; "
                        "remote host windows by %s; ratio and /nixl > 1: axon ahead\n",
                        o.runs, o.window, tls, o.window_transfer);
  std::fputs(table.c_str(), stdout);
  std::fputs(json.c_str(), stdout);
  if (!o.json.empty()) std::ofstream(o.json) << json;
  // Detached before the daemons stop.
  writer.reset();
  local_owner.reset();
  remote_owner.reset();
  return 0;
}
