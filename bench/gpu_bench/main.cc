// gpu-bench: GPU tensors through axon against the raw CUDA copies, in one run.
//   local   GPU -> GPU through one daemon (a device-to-device copy in axond)
//           against cudaMemcpy device to device in this process (P4);
//   remote  GPU -> GPU across two daemons staged through pinned host memory
//           (gpu.remote_path=staging) against the pinned-staging limit: the
//           slowest of pinned cudaMemcpy device->host, host->device and the
//           host wire between the daemons (ucx_perftest ucp_am_bw, host
//           memory, their transports) (P5);
//   direct  GPU -> GPU across two other daemons through UCX in device memory
//           (gpu.remote_path=direct, gpu.same_host=bounce: bounce buffers)
//           against ucx_perftest ucp_am_bw -m cuda from the same UCX,
//           --window messages in flight as for axon (P5);
//   handle  the same across two more daemons by CUDA IPC handle
//           (gpu.same_host=handles, the default on one host), against the
//           same ucx_perftest (P5);
//   peer    with two GPUs: GPU 0 -> GPU 1 through one daemon, against a peer
//           cudaMemcpy (issue 7);
//   d-peer  with two GPUs: GPU 0 -> GPU 1 across two daemons, direct, against
//           ucx_perftest -m cuda from GPU 0 to GPU 1 (issue 7);
//   h-peer  the same by handle (issue 7);
//   rt      round trips of GPU tensors (64 B, 1 MiB, 64 MiB) local, remote
//           direct and by handle, the tensor carried both ways, for
//           bench/compare (P8);
//   sync    the stream-order cost libaxon pays per GPU operation: a
//           cudaStreamSynchronize of the caller's stream, when it is idle.
// Each figure is the median of --runs runs of --iterations transfers. Prints
// a table; --json PATH writes the same as JSON.
#include <cuda_runtime_api.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "axon/client.h"
#include "bench/axon_bench/baseline.h"
#include "client/tools/local_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string axond, run_dir = "/tmp/axon-gpu-bench", json;
  std::string perftest = AXON_BENCH_PERFTEST, ucx_libdir = AXON_BENCH_UCX_LIBDIR;
  int runs = 3, iterations = 10, window = 2;
  bool quick = false, no_direct = false, no_handles = false;
};

struct Row {
  std::string where;
  size_t size = 0;
  double axon_gbps = 0, base_gbps = 0;
  std::string baseline;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void Check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "gpu-bench: %s: %s\n", what, cudaGetErrorString(err));
    std::exit(1);
  }
}

// GB/s of `iterations` cudaMemcpy calls of `size` bytes, median of `runs`.
double CopyRate(void* to, const void* from, size_t size, const Options& o) {
  std::vector<double> rates;
  for (int r = 0; r < o.runs; ++r) {
    Check(cudaDeviceSynchronize(), "sync");
    const auto start = Clock::now();
    for (int i = 0; i < o.iterations; ++i) {
      Check(cudaMemcpy(to, from, size, cudaMemcpyDefault), "copy");
    }
    Check(cudaDeviceSynchronize(), "sync");  // a device-to-device cudaMemcpy returns early
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    rates.push_back(double(size) * o.iterations / s / 1e9);
  }
  return Median(rates);
}

// One transfer of `size` bytes from `from` into `into`: the receive
// posted, then the send (as (send, receive)).
using Ops = std::pair<axon::Operation, axon::Operation>;
absl::StatusOr<Ops> Post(axon::Client& sender, axon::Client& receiver, const std::string& to,
                         const axon::Buffer& from, const axon::Buffer& into, size_t size,
                         uint64_t tag) {
  // Every client here binds one endpoint, named after its role.
  const std::string receiver_endpoint = to.substr(to.find('/') + 1);
  const std::string sender_endpoint = receiver_endpoint == "rx" ? "tx" : "rx";
  auto recv = receiver.PostRecv(receiver_endpoint, tag, into, 0, size);
  if (!recv.ok()) return recv.status();
  auto send = sender.Send(sender_endpoint, to, tag, from, 0, size);
  if (!send.ok()) {
    (void)receiver.Cancel(*recv);
    (void)receiver.Wait(*recv, 1000);
    return send.status();
  }
  return Ops{*send, *recv};
}

// Waits for both sides of a posted transfer; a failed send withdraws its
// receive.
absl::Status Finish(axon::Client& sender, axon::Client& receiver, const Ops& ops) {
  auto a = sender.Wait(ops.first, 60000);
  if (!a.ok()) return a.status();
  if (!a->status.ok()) {
    (void)receiver.Cancel(ops.second);
    (void)receiver.Wait(ops.second, 1000);
    return a->status;
  }
  auto b = receiver.Wait(ops.second, 60000);
  if (!b.ok()) return b.status();
  return b->status;
}

// One transfer, both sides waited for.
absl::Status Transfer(axon::Client& sender, axon::Client& receiver, const std::string& to,
                      const axon::Buffer& from, const axon::Buffer& into, size_t size,
                      uint64_t tag) {
  auto ops = Post(sender, receiver, to, from, into, size, tag);
  if (!ops.ok()) return ops.status();
  return Finish(sender, receiver, *ops);
}

// GB/s of sends of `size` bytes with `o.window` of them in flight (each
// into the same buffer: a bandwidth figure, the bytes are not checked),
// median of the runs.
double AxonRate(axon::Client& sender, axon::Client& receiver, const std::string& to,
                const axon::Buffer& from, const axon::Buffer& into, size_t size, const Options& o,
                const std::string& where) {
  static uint64_t tag = 1000;
  auto fail = [&](const absl::Status& st) {
    std::fprintf(stderr,
                 "gpu-bench: %s: a transfer of %zu bytes failed: %s (the daemons' logs are "
                 "under %s)\n",
                 where.c_str(), size, std::string(st.message()).c_str(), o.run_dir.c_str());
    std::exit(1);
  };
  std::vector<double> rates;
  for (int r = 0; r < o.runs; ++r) {
    std::deque<Ops> flight;
    const auto start = Clock::now();
    for (int i = 0; i < o.iterations || !flight.empty(); ++i) {
      if (i < o.iterations) {
        auto ops = Post(sender, receiver, to, from, into, size, ++tag);
        if (!ops.ok()) fail(ops.status());
        flight.push_back(*ops);
      }
      if (static_cast<int>(flight.size()) >= o.window || i >= o.iterations) {
        if (auto st = Finish(sender, receiver, flight.front()); !st.ok()) fail(st);
        flight.pop_front();
      }
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    rates.push_back(double(size) * o.iterations / s / 1e9);
  }
  return Median(rates);
}

// Round trips of `size` bytes of GPU memory: `a` sends `mine` to `b`'s
// `theirs`, which sends it back into `mine`; median and min microseconds.
struct RoundTrip {
  double p50_us = 0, min_us = 0;
};
RoundTrip RoundTrips(axon::Client& a, axon::Client& b, const std::string& to_b,
                     const std::string& to_a, const axon::Buffer& mine, const axon::Buffer& theirs,
                     size_t size, int iterations) {
  static uint64_t tag = 1u << 30;
  std::vector<double> us;
  for (int i = 0; i < iterations + iterations / 10; ++i) {
    const auto start = Clock::now();
    absl::Status st = Transfer(a, b, to_b, mine, theirs, size, ++tag);
    if (st.ok()) st = Transfer(b, a, to_a, theirs, mine, size, ++tag);
    if (!st.ok()) {
      std::fprintf(stderr, "gpu-bench: a round trip of %zu bytes failed: %s\n", size,
                   std::string(st.message()).c_str());
      std::exit(1);
    }
    if (i >= iterations / 10) {  // the first tenth warms up
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
  }
  return {Median(us), *std::min_element(us.begin(), us.end())};
}

// The GPU work of one round trip done in this process, the floor of any
// path that moves the bytes with GPU copies and learns of each on the host:
// `size` bytes a -> b then b -> a, each a cudaMemcpyAsync and an event
// polled until done. Median microseconds.
double CopyRoundTripMicros(void* a, void* b, size_t size, int iterations) {
  cudaStream_t stream;
  cudaEvent_t event;
  Check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  Check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "event");
  auto copy = [&](void* to, const void* from) {
    Check(cudaMemcpyAsync(to, from, size, cudaMemcpyDefault, stream), "copy");
    Check(cudaEventRecord(event, stream), "record");
    cudaError_t state;
    while ((state = cudaEventQuery(event)) == cudaErrorNotReady) {
    }
    Check(state, "query");
  };
  std::vector<double> us;
  for (int i = 0; i < iterations + iterations / 10; ++i) {
    const auto start = Clock::now();
    copy(b, a);
    copy(a, b);
    if (i >= iterations / 10) {
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
  }
  cudaEventDestroy(event);
  cudaStreamDestroy(stream);
  return Median(us);
}

// Median microseconds of a cudaStreamSynchronize on an idle stream.
double IdleSyncMicros() {
  cudaStream_t stream;
  Check(cudaStreamCreate(&stream), "stream");
  std::vector<double> us;
  for (int i = 0; i < 20000; ++i) {
    const auto start = Clock::now();
    Check(cudaStreamSynchronize(stream), "sync");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  cudaStreamDestroy(stream);
  return Median(us);
}

// Two daemons of one GPU path, and their clients: a sender and a receiver
// on node a, a receiver on node b.
struct Nodes {
  std::unique_ptr<axon::tools::LocalCluster> cluster;
  std::unique_ptr<axon::Client> sender, local_rx, remote_rx;
  std::string remote_rx_address, sender_address;
};

absl::StatusOr<std::unique_ptr<axon::Client>> Connect(const std::string& socket, const char* name) {
  auto c = axon::Client::Connect({.socket_path = socket, .client_name = name});
  for (int i = 0; i < 100 && !c.ok(); ++i) {  // the daemon is starting
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    c = axon::Client::Connect({.socket_path = socket, .client_name = name});
  }
  return c;
}

// Two daemons named after `label`, with `sets`; an error when they do not
// start (direct, where UCX cannot move CUDA memory).
absl::StatusOr<Nodes> StartNodes(const Options& o, const std::string& label,
                                 std::vector<std::string> sets) {
  Nodes n;
  n.cluster = std::make_unique<axon::tools::LocalCluster>(absl::StrCat(o.run_dir, "/", label),
                                                          o.axond, std::move(sets));
  if (auto st = n.cluster->Start("gpu-bench-" + label); !st.ok()) return st;
  for (auto [client, socket, name] :
       {std::tuple{&n.sender, n.cluster->a().socket, "gpu-bench-tx"},
        std::tuple{&n.local_rx, n.cluster->a().socket, "gpu-bench-rx"},
        std::tuple{&n.remote_rx, n.cluster->b().socket, "gpu-bench-rx"}}) {
    auto c = Connect(socket, name);
    if (!c.ok()) {
      return absl::Status(c.status().code(),
                          absl::StrCat(c.status().message(), " (see ", n.cluster->run_dir(), ")"));
    }
    *client = *std::move(c);
  }
  (void)n.sender->BindEndpoint("tx");
  (void)n.local_rx->BindEndpoint("rx");
  (void)n.remote_rx->BindEndpoint("rx");
  n.remote_rx_address = n.cluster->b().name + "/rx";
  n.sender_address = n.cluster->a().name + "/tx";
  return n;
}

// Registers `src` with the sender and `dst` with the remote receiver.
std::pair<axon::CudaBuffer, axon::CudaBuffer> RegisterRemote(Nodes& n, void* src, void* dst,
                                                             size_t bytes) {
  auto from = n.sender->RegisterCuda(src, bytes);
  auto into = n.remote_rx->RegisterCuda(dst, bytes);
  if (!from.ok() || !into.ok()) {
    std::fprintf(stderr, "gpu-bench: registering GPU memory failed\n");
    std::exit(1);
  }
  // Until the daemons see each other, a send to the other node fails.
  for (int i = 0;; ++i) {
    auto st = Transfer(*n.sender, *n.remote_rx, n.remote_rx_address, *from, *into, 1, i + 1);
    if (st.ok()) break;
    if (i > 100) {
      std::fprintf(stderr, "gpu-bench: the daemons did not connect: %s\n",
                   std::string(st.message()).c_str());
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return {*std::move(from), *std::move(into)};
}

std::string Size(size_t n) {
  if (n >= (size_t{1} << 30)) return absl::StrCat(n >> 30, "G");
  return absl::StrCat(n >> 20, "M");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"gpu-bench: GPU tensors through axon against raw CUDA copies"};
  app.add_option("--axond", o.axond, "the axond binary (default: next to this build)");
  app.add_option("--run-dir", o.run_dir, "where the daemons' sockets and logs go");
  app.add_option("--runs", o.runs, "runs per figure (the median is reported)");
  app.add_option("--iterations", o.iterations, "transfers per run");
  app.add_option("--window", o.window,
                 "transfers in flight in the bandwidth rows (ucx_perftest -W alike)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--json", o.json, "also write the results as JSON here");
  app.add_option("--perftest", o.perftest,
                 "ucx_perftest of the same UCX (the direct rows' baseline)")
      ->capture_default_str();
  app.add_option("--ucx-libdir", o.ucx_libdir, "LD_LIBRARY_PATH for ucx_perftest");
  app.add_flag("--quick", o.quick, "sizes up to 64 MiB only");
  app.add_flag("--no-direct", o.no_direct,
               "leave out the direct and by-handle rows (gpu.remote_path=direct)");
  app.add_flag("--no-handles", o.no_handles,
               "leave out the by-handle rows (gpu.same_host=handles)");
  CLI11_PARSE(app, argc, argv);

  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("gpu-bench: no CUDA device; nothing to measure\n");
    return 0;
  }
  std::vector<size_t> sizes = {size_t{1} << 20, size_t{16} << 20, size_t{64} << 20};
  if (!o.quick) sizes.insert(sizes.end(), {size_t{256} << 20, size_t{1} << 30});
  const size_t max = sizes.back();

  // Staging pair (also the local rows), and a direct pair where UCX can.
  auto staging_nodes = StartNodes(o, "staging", {"gpu.remote_path=staging"});
  if (!staging_nodes.ok()) {
    std::fprintf(stderr, "gpu-bench: %s\n", std::string(staging_nodes.status().message()).c_str());
    return 1;
  }
  Nodes& staged = *staging_nodes;
  // A pair whose rows are left out (with the reason) when it does not start.
  auto optional_nodes = [&](const char* label, std::vector<std::string> sets,
                            const char* rows) -> std::optional<Nodes> {
    auto n = StartNodes(o, label, std::move(sets));
    if (n.ok()) return *std::move(n);
    std::fprintf(stderr, "gpu-bench: no %s rows: %s\n", rows,
                 std::string(n.status().message()).c_str());
    return std::nullopt;
  };
  std::optional<Nodes> direct, handles;
  if (!o.no_direct) {
    direct = optional_nodes("direct", {"gpu.remote_path=direct", "gpu.same_host=bounce"}, "direct");
  }
  if (direct && !o.no_handles) {
    handles =
        optional_nodes("handles", {"gpu.remote_path=direct", "gpu.same_host=handles"}, "by-handle");
  }
  axon::Client& sender = *staged.sender;
  axon::Client& local_rx = *staged.local_rx;
  axon::bench::Perftest perftest(o.perftest, o.ucx_libdir);
  std::string staged_tls;  // known once the staging pair has connected
  if (!perftest.available())
    std::fprintf(stderr, "gpu-bench: no ucx_perftest: no direct baseline\n");

  void *src = nullptr, *dst = nullptr, *dst2 = nullptr, *host = nullptr;
  Check(cudaMalloc(&src, max), "cudaMalloc");
  Check(cudaMalloc(&dst, max), "cudaMalloc");
  Check(cudaMalloc(&dst2, max), "cudaMalloc");
  Check(cudaHostAlloc(&host, max, cudaHostAllocDefault), "cudaHostAlloc");
  Check(cudaMemset(src, 7, max), "memset");
  auto [from, remote_into] = RegisterRemote(staged, src, dst2, max);
  std::optional<std::pair<axon::CudaBuffer, axon::CudaBuffer>> direct_buffers, handle_buffers;
  if (direct) direct_buffers.emplace(RegisterRemote(*direct, src, dst2, max));
  if (handles) handle_buffers.emplace(RegisterRemote(*handles, src, dst2, max));
  auto local_into = local_rx.RegisterCuda(dst, max);
  // With a second GPU: GPU 0 to GPU 1 through one daemon (a peer copy),
  // against cudaMemcpyPeer.
  void* peer_dst = nullptr;
  std::optional<axon::CudaBuffer> peer_into, direct_peer_into, handle_peer_into;
  if (devices >= 2) {
    Check(cudaSetDevice(1), "cudaSetDevice(1)");
    Check(cudaMalloc(&peer_dst, max), "cudaMalloc on GPU 1");
    Check(cudaSetDevice(0), "cudaSetDevice(0)");
    // The baseline at its best: GPU 0 writes GPU 1's memory directly (NVLink
    // or PCIe peer to peer), as axond's peer copy does where it can.
    int can = 0;
    if (cudaDeviceCanAccessPeer(&can, 0, 1) == cudaSuccess && can) {
      if (cudaError_t e = cudaDeviceEnablePeerAccess(1, 0);
          e != cudaSuccess && e != cudaErrorPeerAccessAlreadyEnabled) {
        Check(e, "peer access GPU 0 -> GPU 1");
      }
      (void)cudaGetLastError();
    } else {
      std::fprintf(stderr, "gpu-bench: GPU 0 cannot reach GPU 1 directly: peer copies via host\n");
    }
    auto b = local_rx.RegisterCuda(peer_dst, max);
    if (!b.ok()) {
      std::fprintf(stderr, "gpu-bench: registering GPU 1 memory failed\n");
      return 1;
    }
    peer_into.emplace(*std::move(b));
    // And across two daemons, GPU 0 to GPU 1, direct and by handle.
    for (auto [nodes, into] :
         {std::pair{&direct, &direct_peer_into}, std::pair{&handles, &handle_peer_into}}) {
      if (!*nodes) continue;
      auto d = (*nodes)->remote_rx->RegisterCuda(peer_dst, max);
      if (!d.ok()) {
        std::fprintf(stderr, "gpu-bench: registering GPU 1 memory failed\n");
        return 1;
      }
      into->emplace(*std::move(d));
    }
  }
  if (!local_into.ok()) {
    std::fprintf(stderr, "gpu-bench: registering GPU memory failed\n");
    return 1;
  }

  std::vector<Row> rows;
  for (size_t size : sizes) {
    std::fprintf(stderr, "gpu-bench: %s ...\n", Size(size).c_str());
    Row local{.where = "local", .size = size, .baseline = "cudaMemcpy D2D"};
    local.base_gbps = CopyRate(dst, src, size, o);
    local.axon_gbps = AxonRate(sender, local_rx, "rx", from, *local_into, size, o, "local");
    rows.push_back(local);
    // The pinned-staging limit: a pipeline of a pinned copy out, the host
    // wire between the two daemons and a pinned copy in runs at its slowest
    // stage. The wire is ucx_perftest in host memory on the daemons' own
    // transports, with as many messages in flight.
    const double staged_gbps = AxonRate(sender, *staged.remote_rx, staged.remote_rx_address, from,
                                        remote_into, size, o, "remote");
    if (staged_tls.empty()) staged_tls = axon::bench::PeerTransports(staged.cluster->a().socket);
    const double d2h = CopyRate(host, src, size, o), h2d = CopyRate(dst2, host, size, o);
    std::vector<double> wire;
    for (int r = 0; perftest.available() && r < o.runs; ++r) {
      auto b = perftest.Run("ucp_am_bw", staged_tls, size, std::max(o.iterations, 10), o.window);
      if (b.ok()) wire.push_back(b->gbytes_per_s);
    }
    Row remote{.where = "remote",
               .size = size,
               .baseline = wire.empty()
                               ? absl::StrFormat("min(pinned D2H %.1f, H2D %.1f)", d2h, h2d)
                               : absl::StrFormat("min(pinned D2H %.1f, H2D %.1f, %s wire %.1f)",
                                                 d2h, h2d, staged_tls, Median(wire))};
    remote.base_gbps = std::min(d2h, h2d);
    if (!wire.empty()) remote.base_gbps = std::min(remote.base_gbps, Median(wire));
    remote.axon_gbps = staged_gbps;
    rows.push_back(remote);
    // ucx_perftest between two processes, CUDA memory on GPU `gpu_from` and
    // GPU `gpu_to`, --window messages in flight; 0 without it.
    auto raw_cuda = [&](int gpu_from, int gpu_to) {
      std::vector<double> base;
      for (int r = 0; perftest.available() && r < o.runs; ++r) {
        auto b = perftest.Run(
            "ucp_am_bw", "all", size, std::max(o.iterations, 10), o.window, "cuda",
            gpu_from == gpu_to ? absl::StrCat(gpu_from) : absl::StrCat(gpu_to, ",", gpu_from));
        if (!b.ok()) {
          std::fprintf(stderr, "gpu-bench: %s\n", std::string(b.status().message()).c_str());
          break;
        }
        base.push_back(b->gbytes_per_s);
      }
      return Median(base);
    };
    if (direct) {
      Row dir{.where = "direct", .size = size, .baseline = "ucx_perftest am_bw -m cuda"};
      dir.axon_gbps = AxonRate(*direct->sender, *direct->remote_rx, direct->remote_rx_address,
                               direct_buffers->first, direct_buffers->second, size, o, "direct");
      dir.base_gbps = raw_cuda(0, 0);
      rows.push_back(dir);
      if (handles) {
        Row by{.where = "handle", .size = size, .baseline = dir.baseline};
        by.axon_gbps = AxonRate(*handles->sender, *handles->remote_rx, handles->remote_rx_address,
                                handle_buffers->first, handle_buffers->second, size, o, "handle");
        by.base_gbps = dir.base_gbps;
        rows.push_back(by);
      }
    }
    if (peer_into) {
      Row peer{.where = "peer", .size = size, .baseline = "cudaMemcpyPeer 0->1"};
      peer.base_gbps = CopyRate(peer_dst, src, size, o);  // UVA: a peer copy
      peer.axon_gbps = AxonRate(sender, local_rx, "rx", from, *peer_into, size, o, "peer");
      rows.push_back(peer);
    }
    if (direct_peer_into) {
      Row dp{.where = "d-peer", .size = size, .baseline = "ucx_perftest -m cuda GPU 0->1"};
      dp.axon_gbps = AxonRate(*direct->sender, *direct->remote_rx, direct->remote_rx_address,
                              direct_buffers->first, *direct_peer_into, size, o, "d-peer");
      dp.base_gbps = raw_cuda(0, 1);
      rows.push_back(dp);
      if (handle_peer_into) {
        Row hp{.where = "h-peer", .size = size, .baseline = dp.baseline};
        hp.axon_gbps = AxonRate(*handles->sender, *handles->remote_rx, handles->remote_rx_address,
                                handle_buffers->first, *handle_peer_into, size, o, "h-peer");
        hp.base_gbps = dp.base_gbps;
        rows.push_back(hp);
      }
    }
  }
  // Round trips, the tensor both ways, as bench/compare measures TensorPipe.
  struct Trip {
    std::string where;
    size_t size;
    RoundTrip rt;
    double copies_us;  // CopyRoundTripMicros of the size
  };
  std::vector<Trip> trips;
  for (size_t size : {size_t{64}, size_t{1} << 20, size_t{64} << 20}) {
    const int n = size < (1 << 20) ? 2000 : size < (16 << 20) ? 200 : 20;
    const double copies_us = CopyRoundTripMicros(src, dst, size, n);
    trips.push_back({"local", size,
                     RoundTrips(sender, local_rx, "rx", "tx", from, *local_into, size, n),
                     copies_us});
    trips.push_back({"remote", size,
                     RoundTrips(sender, *staged.remote_rx, staged.remote_rx_address,
                                staged.sender_address, from, remote_into, size, n),
                     copies_us});
    if (direct) {
      trips.push_back({"direct", size,
                       RoundTrips(*direct->sender, *direct->remote_rx, direct->remote_rx_address,
                                  direct->sender_address, direct_buffers->first,
                                  direct_buffers->second, size, n),
                       copies_us});
    }
    if (handles) {
      trips.push_back({"handle", size,
                       RoundTrips(*handles->sender, *handles->remote_rx, handles->remote_rx_address,
                                  handles->sender_address, handle_buffers->first,
                                  handle_buffers->second, size, n),
                       copies_us});
    }
  }
  const double sync_us = IdleSyncMicros();

  std::string table = absl::StrFormat("%-7s %6s | %9s %9s %6s  %s\n", "where", "size", "axon GB/s",
                                      "base GB/s", "ratio", "baseline");
  std::string json = "{\"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const double ratio = r.base_gbps > 0 ? r.axon_gbps / r.base_gbps : 0;
    absl::StrAppendFormat(&table, "%-7s %6s | %9.2f %9.2f %6.2f  %s\n", r.where, Size(r.size),
                          r.axon_gbps, r.base_gbps, ratio, r.baseline);
    absl::StrAppendFormat(&json,
                          "%s{\"where\": \"%s\", \"size\": %d, \"axon_gbps\": %.3f, "
                          "\"base_gbps\": %.3f, \"ratio\": %.3f, \"baseline\": \"%s\"}",
                          i ? ", " : "", r.where, r.size, r.axon_gbps, r.base_gbps, ratio,
                          r.baseline);
  }
  absl::StrAppendFormat(&table, "\n%-7s %9s | %12s %12s | %12s %6s\n", "where", "size", "rt p50",
                        "rt min", "2 copies", "ratio");
  json += "], \"round_trips\": [";
  for (size_t i = 0; i < trips.size(); ++i) {
    const Trip& t = trips[i];
    absl::StrAppendFormat(&table, "%-7s %9d | %10.1fus %10.1fus | %10.1fus %6.2f\n", t.where,
                          t.size, t.rt.p50_us, t.rt.min_us, t.copies_us,
                          t.copies_us > 0 ? t.rt.p50_us / t.copies_us : 0);
    absl::StrAppendFormat(&json,
                          "%s{\"where\": \"%s\", \"size\": %d, \"round_trip_us\": "
                          "{\"p50\": %.3f, \"min\": %.3f}, \"two_copies_us\": %.3f}",
                          i ? ", " : "", t.where, t.size, t.rt.p50_us, t.rt.min_us, t.copies_us);
  }
  absl::StrAppendFormat(&json,
                        "], \"idle_stream_sync_us\": %.3f, \"runs\": %d, \"iterations\": %d, "
                        "\"window\": %d}\n",
                        sync_us, o.runs, o.iterations, o.window);
  absl::StrAppendFormat(&table,
                        "stream order: cudaStreamSynchronize of an idle stream, %.2f us per GPU "
                        "operation\n2 copies: the round trip's two cudaMemcpyAsync calls, each "
                        "waited for with a polled event, in this process\nmedians of %d runs x %d "
                        "transfers, %d in flight; ratio = axon "
                        "/ base\n",
                        sync_us, o.runs, o.iterations, o.window);
  std::fputs(table.c_str(), stdout);
  std::fputs(json.c_str(), stdout);
  if (!o.json.empty()) std::ofstream(o.json) << json;
  cudaFree(src);
  cudaFree(dst);
  cudaFree(dst2);
  if (peer_dst != nullptr) cudaFree(peer_dst);
  cudaFreeHost(host);
  return 0;
}
