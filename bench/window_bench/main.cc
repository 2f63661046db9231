// window-bench: one-sided transfers on one node against the raw copies, in
// one run. An owner client exposes a window, a writer client in this process
// writes into it through the same daemon.
//   block   64 MiB blocks written, --window in flight, GB/s, against memcpy
//           (host) or cudaMemcpy device to device (GPU) in this process;
//   kv      1,000 blocks of 16 KiB in one operation with one notification
//           (KV-cache-like), blocks/s until the owner has the notification,
//           against the same 1,000 copies made by memcpy or cudaMemcpyAsync;
//   notify  a 64 B host write with a notification: from Write to the
//           owner's receive of the notification, p50 us, against a 64 B
//           two-sided message through the same daemon.
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
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "axon/client.h"
#include "client/tools/local_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string axond, run_dir = "/tmp/axon-window-bench", json;
  int runs = 5, iterations = 20, latency_samples = 2000, window = 2;
};

struct Row {
  std::string what, memory, unit, baseline;
  double axon = 0, base = 0;
  bool lower_is_better = false;
};

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

struct Bench {
  Options o;
  std::unique_ptr<axon::Client> owner, writer;
};

// Seconds of `fn()` run `iterations` times, median of `runs`.
template <typename Fn>
double Seconds(const Options& o, Fn fn) {
  std::vector<double> runs;
  for (int r = 0; r < o.runs; ++r) {
    const auto start = Clock::now();
    for (int i = 0; i < o.iterations; ++i) fn();
    runs.push_back(std::chrono::duration<double>(Clock::now() - start).count() / o.iterations);
  }
  return Median(runs);
}

// One 64 MiB block: GB/s through the window and by the raw copy.
Row BlockRow(Bench& b, const axon::Buffer& from, const axon::Buffer& into, bool gpu) {
  constexpr size_t kBytes = 64 << 20;
  auto window = Ok(b.owner->Expose(into, 0, kBytes), "expose");
  const axon::Block all[] = {{&from, 0, 0, kBytes}};
  const double axon_s = Seconds(
      b.o, [&] { Done(*b.writer, Ok(b.writer->Write("w", window, all), "write"), "write"); });
  const double base_s = Seconds(b.o, [&] {
    if (gpu) {
      Check(cudaMemcpy(into.data(), from.data(), kBytes, cudaMemcpyDeviceToDevice), "copy");
      Check(cudaDeviceSynchronize(), "sync");
    } else {
      std::memcpy(into.data(), from.data(), kBytes);
    }
  });
  Ok(b.owner->Unexpose(window), "unexpose");
  return {.what = "block 64MiB",
          .memory = gpu ? "gpu" : "host",
          .unit = "GB/s",
          .baseline = gpu ? "cudaMemcpy D2D" : "memcpy",
          .axon = kBytes / axon_s / 1e9,
          .base = kBytes / base_s / 1e9};
}

// 1,000 blocks of 16 KiB with one notification: blocks/s.
Row KvRow(Bench& b, const axon::Buffer& from, const axon::Buffer& into, bool gpu) {
  constexpr size_t kBlocks = 1000, kBlock = 16384;
  auto window = Ok(b.owner->Expose(into, 0, kBlocks * kBlock, {.notify_endpoint = "o"}), "expose");
  auto note_into = Ok(b.owner->AllocateHost(64), "allocate");
  std::vector<axon::Block> blocks;
  // Scattered, as a cache's pages over its pool: block i to slot 7i mod 1000.
  for (size_t i = 0; i < kBlocks; ++i) {
    blocks.push_back({&from, i * kBlock, ((i * 7) % kBlocks) * kBlock, kBlock});
  }
  const axon::Notification note{9, "layer"};
  const double axon_s = Seconds(b.o, [&] {
    auto got = Ok(b.owner->PostRecv("o", 9, note_into, 0, 64), "post");
    Done(*b.writer, Ok(b.writer->Write("w", window, blocks, &note), "write"), "write");
    Done(*b.owner, got, "notification");
  });
  const double base_s = Seconds(b.o, [&] {
    for (const axon::Block& k : blocks) {
      auto* to = static_cast<uint8_t*>(into.data()) + k.window_offset;
      const auto* src = static_cast<const uint8_t*>(from.data()) + k.offset;
      if (gpu) {
        Check(cudaMemcpyAsync(to, src, kBlock, cudaMemcpyDeviceToDevice, nullptr), "copy");
      } else {
        std::memcpy(to, src, kBlock);
      }
    }
    if (gpu) Check(cudaDeviceSynchronize(), "sync");
  });
  Ok(b.owner->Unexpose(window), "unexpose");
  return {.what = "kv 1000x16KiB+note",
          .memory = gpu ? "gpu" : "host",
          .unit = "blocks/s",
          .baseline = gpu ? "1000 cudaMemcpyAsync" : "1000 memcpy",
          .axon = kBlocks / axon_s,
          .base = kBlocks / base_s};
}

// A 64 B write to the owner's notification, against a 64 B message.
Row NotifyRow(Bench& b) {
  auto from = Ok(b.writer->AllocateHost(4096), "allocate");
  auto into = Ok(b.owner->AllocateHost(4096), "allocate");
  auto window = Ok(b.owner->Expose(into, 0, 4096, {.notify_endpoint = "o"}), "expose");
  const axon::Block one[] = {{&from, 0, 0, 64}};
  const axon::Notification note{3, "n"};
  auto sample = [&](auto start) {
    std::vector<double> us;
    for (int i = 0; i < b.o.latency_samples; ++i) {
      auto got = Ok(b.owner->PostRecv("o", 3, into, 1024, 1024), "post");
      const auto t0 = Clock::now();
      const axon::Operation sent = start();
      Done(*b.owner, got, "receive");
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      Done(*b.writer, sent, "write");
    }
    return Median(us);
  };
  const double axon_us =
      sample([&] { return Ok(b.writer->Write("w", window, one, &note), "write"); });
  const double base_us =
      sample([&] { return Ok(b.writer->Send("w", "o", 3, from, 0, 64), "send"); });
  Ok(b.owner->Unexpose(window), "unexpose");
  return {.what = "notify 64B",
          .memory = "host",
          .unit = "us p50",
          .baseline = "64 B message",
          .axon = axon_us,
          .base = base_us,
          .lower_is_better = true};
}

}  // namespace

int main(int argc, char** argv) {
  Bench b;
  Options& o = b.o;
  CLI::App app{"window-bench: one-sided transfers against the raw copies"};
  app.add_option("--axond", o.axond, "the axond binary (default: next to this build)");
  app.add_option("--run-dir", o.run_dir, "where the daemon's socket and log go");
  app.add_option("--runs", o.runs, "runs per figure (the median is reported)")
      ->capture_default_str();
  app.add_option("--iterations", o.iterations, "operations per run")->capture_default_str();
  app.add_option("--latency-samples", o.latency_samples, "samples of the notify row")
      ->capture_default_str();
  app.add_option("--window", o.window, "64 MiB writes in flight in the block rows")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--json", o.json, "also write the results as JSON here");
  CLI11_PARSE(app, argc, argv);

  axon::tools::LocalCluster cluster(o.run_dir, o.axond);
  Ok(cluster.Start("window-bench"), "start axond");
  b.owner = Ok(axon::Client::Connect({.socket_path = cluster.a().socket, .client_name = "owner"}),
               "connect");
  b.writer = Ok(axon::Client::Connect({.socket_path = cluster.a().socket, .client_name = "writer"}),
                "connect");
  Ok(b.owner->BindEndpoint("o").status(), "bind");
  Ok(b.writer->BindEndpoint("w").status(), "bind");

  std::vector<Row> rows;
  {
    auto from = Ok(b.writer->AllocateHost(64 << 20), "allocate");
    auto into = Ok(b.owner->AllocateHost(64 << 20), "allocate");
    std::memset(from.data(), 1, from.size());
    std::memset(into.data(), 0, into.size());
    rows.push_back(BlockRow(b, from, into, false));
    rows.push_back(KvRow(b, from, into, false));
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) {
    auto from = Ok(b.writer->AllocateCuda(64 << 20), "allocate GPU");
    auto into = Ok(b.owner->AllocateCuda(64 << 20), "allocate GPU");
    rows.push_back(BlockRow(b, from, into, true));
    rows.push_back(KvRow(b, from, into, true));
  } else {
    std::printf("window-bench: no CUDA device; GPU rows left out\n");
  }
  rows.push_back(NotifyRow(b));

  std::string table = absl::StrFormat("%-20s %-5s | %12s %12s %6s  %-9s %s\n", "what", "mem",
                                      "axon", "base", "ratio", "unit", "baseline");
  std::string json = "{\"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    // ratio > 1: axon is better, whichever way the unit goes.
    const double ratio =
        r.lower_is_better ? (r.axon > 0 ? r.base / r.axon : 0) : (r.base > 0 ? r.axon / r.base : 0);
    absl::StrAppendFormat(&table, "%-20s %-5s | %12.2f %12.2f %6.2f  %-9s %s\n", r.what, r.memory,
                          r.axon, r.base, ratio, r.unit, r.baseline);
    absl::StrAppendFormat(&json,
                          "%s{\"what\": \"%s\", \"memory\": \"%s\", \"unit\": \"%s\", "
                          "\"axon\": %.3f, \"base\": %.3f, \"ratio\": %.3f, \"baseline\": \"%s\"}",
                          i ? ", " : "", r.what, r.memory, r.unit, r.axon, r.base, ratio,
                          r.baseline);
  }
  absl::StrAppendFormat(&json, "], \"runs\": %d, \"iterations\": %d, \"window\": %d}\n", o.runs,
                        o.iterations, o.window);
  absl::StrAppendFormat(&table,
                        "medians of %d runs; %d block writes in flight; ratio > 1: axon ahead of "
                        "the baseline\n",
                        o.runs, o.window);
  std::fputs(table.c_str(), stdout);
  std::fputs(json.c_str(), stdout);
  if (!o.json.empty()) std::ofstream(o.json) << json;
  b.owner.reset();  // detached before the daemon stops
  b.writer.reset();
  return 0;
}
