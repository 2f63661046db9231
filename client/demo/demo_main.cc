// `axon demo`: the main job in one command. Starts two local daemons (two
// "nodes" on loopback, each with its own socket, port and name), attaches a
// client to each and a second client to the first, sends tensors between
// them (same node and across the nodes) with checksums, prints what happened
// and how fast, and stops the daemons again.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "axon/client.h"
#include "client/tools/local_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;

uint64_t Checksum(const void* data, size_t size) {
  uint64_t h = 1469598103934665603ull;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct Result {
  double p50_us = 0, best_us = 0;
  double gbps = 0;
  bool intact = true;
};

// Round trips of `size` bytes between a and b: a sends, b answers with the same bytes.
absl::StatusOr<Result> PingPong(axon::Client& a, const std::string& a_ep, axon::Client& b,
                                const std::string& b_ep, const std::string& b_addr,
                                const std::string& a_addr, axon::HostBuffer& abuf,
                                axon::HostBuffer& bbuf, size_t size, int rounds) {
  std::vector<double> times;
  Result r;
  const size_t half = abuf.size() / 2;
  for (int i = 0; i < rounds; ++i) {
    auto* out = static_cast<uint8_t*>(abuf.data());
    out[0] = static_cast<uint8_t>(i);
    const auto t0 = Clock::now();
    auto b_recv = b.PostRecv(b_ep, 1, bbuf, 0, size);
    auto a_recv = a.PostRecv(a_ep, 2, abuf, half, size);
    auto a_send = a.Send(a_ep, b_addr, 1, abuf, 0, size);
    if (!b_recv.ok() || !a_recv.ok() || !a_send.ok()) return absl::InternalError("submit failed");
    auto got = b.Wait(*b_recv, 30000);
    if (!got.ok() || !got->status.ok()) return got.ok() ? got->status : got.status();
    auto b_send = b.Send(b_ep, a_addr, 2, bbuf, 0, size);
    if (!b_send.ok()) return b_send.status();
    auto back = a.Wait(*a_recv, 30000);
    if (!back.ok() || !back->status.ok()) return back.ok() ? back->status : back.status();
    times.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    (void)a.Wait(*a_send);
    (void)b.Wait(*b_send);
    if (size > 0 && Checksum(out, size) != Checksum(out + half, size)) r.intact = false;
  }
  std::sort(times.begin(), times.end());
  r.p50_us = times[times.size() / 2];
  r.best_us = times.front();
  r.gbps = r.p50_us > 0 ? 2.0 * static_cast<double>(size) / (r.p50_us * 1e3) : 0;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"axon: the tensor transport's demo and tools"};
  app.require_subcommand(1);
  auto* demo = app.add_subcommand(
      "demo", "start two local daemons and three clients, move tensors, print what happened");
  std::string run_dir = "run/demo";
  std::string axond;
  bool keep = false;
  demo->add_option("--run-dir", run_dir, "sockets and logs go here")->capture_default_str();
  demo->add_option("--axond", axond, "the axond binary (default: next to this one)");
  demo->add_flag("--keep", keep, "leave the daemons running (stop them with kill)");
  CLI11_PARSE(app, argc, argv);

  axon::tools::LocalCluster cluster(run_dir, axond);
  if (keep) cluster.Keep();
  if (auto st = cluster.Start("demo"); !st.ok()) {
    std::cerr << st.message() << "\n";
    return 1;
  }
  const auto& a = cluster.a();
  const auto& b = cluster.b();
  std::cout << "axon demo: two nodes on loopback, sockets and logs in " << cluster.run_dir()
            << "\n";
  for (const auto* d : {&a, &b}) {
    std::cout << absl::StrFormat("  started axond '%s' (pid %d): socket %s, UCX port %d\n", d->name,
                                 d->pid, d->socket, d->port);
  }
  auto stop_all = [&] {
    if (!keep) cluster.Stop();
  };
  auto connect = [](const axon::tools::LocalDaemon& d,
                    const std::string& name) -> absl::StatusOr<std::unique_ptr<axon::Client>> {
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (true) {
      auto c = axon::Client::Connect({.socket_path = d.socket, .client_name = name});
      if (c.ok() || Clock::now() > deadline) return c;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  auto trainer = connect(a, "trainer");
  auto local_peer = connect(a, "local-peer");
  auto server = connect(b, "server");
  if (!trainer.ok() || !local_peer.ok() || !server.ok()) {
    std::cerr << "cannot attach: "
              << (!trainer.ok()  ? trainer.status()
                  : !server.ok() ? server.status()
                                 : local_peer.status())
              << "\nsee " << a.log << " and " << b.log << "\n";
    stop_all();
    return 1;
  }
  (void)(*trainer)->BindEndpoint("trainer");
  (void)(*local_peer)->BindEndpoint("local-peer");
  (void)(*server)->BindEndpoint("server");
  std::cout << "  attached 3 clients: demo-a/trainer, demo-a/local-peer, demo-b/server\n";

  const size_t kMax = 64 << 20;
  auto tbuf = (*trainer)->AllocateHost(2 * kMax);
  auto lbuf = (*local_peer)->AllocateHost(kMax);
  auto sbuf = (*server)->AllocateHost(kMax);
  if (!tbuf.ok() || !lbuf.ok() || !sbuf.ok()) {
    std::cerr << "cannot allocate shared memory\n";
    stop_all();
    return 1;
  }
  std::mt19937_64 random(7);
  for (size_t i = 0; i < kMax / 8; ++i) {
    const uint64_t v = random();
    std::memcpy(static_cast<uint8_t*>(tbuf->data()) + i * 8, &v, 8);
  }
  // Wait for the nodes to find each other: a send fails UNAVAILABLE until then.
  auto probe_recv = (*server)->PostRecv("server", 1, *sbuf, 0, 8);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (true) {
    auto probe = (*trainer)->Send("trainer", "demo-b/server", 1, *tbuf, 0, 8);
    auto sent = probe.ok() ? (*trainer)->Wait(*probe, 5000) : probe.status();
    const absl::Status st = sent.ok() ? sent->status : sent.status();
    if (st.ok()) break;
    if (Clock::now() > deadline || !probe_recv.ok()) {
      std::cerr << "the nodes did not connect: " << st << "\nsee " << a.log << " and " << b.log
                << "\n";
      stop_all();
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (void)(*server)->Wait(*probe_recv);
  std::cout << "  demo-a and demo-b connected over UCX\n\n";
  std::cout << absl::StrFormat("%-10s | %-34s | %-34s\n", "", "same node (demo-a -> demo-a)",
                               "across nodes (demo-a -> demo-b)");
  std::cout << absl::StrFormat("%-10s | %10s %10s %11s | %10s %10s %11s  %s\n", "size", "p50 rt",
                               "best rt", "GB/s", "p50 rt", "best rt", "GB/s", "checksums");
  bool all_intact = true;
  for (size_t size : {size_t{64}, size_t{4096}, size_t{1} << 20, kMax}) {
    const int rounds = size >= kMax ? 5 : size >= (1 << 20) ? 20 : 200;
    auto local = PingPong(**trainer, "trainer", **local_peer, "local-peer", "local-peer", "trainer",
                          *tbuf, *lbuf, size, rounds);
    auto remote = PingPong(**trainer, "trainer", **server, "server", "demo-b/server",
                           "demo-a/trainer", *tbuf, *sbuf, size, rounds);
    if (!local.ok() || !remote.ok()) {
      std::cerr << "transfer failed: " << (!local.ok() ? local.status() : remote.status()) << "\n";
      stop_all();
      return 1;
    }
    const bool intact = local->intact && remote->intact;
    all_intact = all_intact && intact;
    std::cout << absl::StrFormat(
        "%-10s | %8.1fus %8.1fus %11.2f | %8.1fus %8.1fus %11.2f  %s\n",
        size >= (1 << 20) ? absl::StrFormat("%d MiB", size >> 20) : absl::StrFormat("%d B", size),
        local->p50_us, local->best_us, local->gbps, remote->p50_us, remote->best_us, remote->gbps,
        intact ? "ok" : "MISMATCH");
  }
  std::cout << "\nrt: round trip, client -> daemon(s) -> client -> back, medians of repeated "
               "runs; GB/s counts both directions.\n";
  if (keep) {
    std::cout << "daemons left running: kill " << a.pid << " " << b.pid << "\n";
    std::cout << "try: build/client/axonctl --socket " << a.socket << " peers\n";
  } else {
    stop_all();
    std::cout << "stopped both daemons\n";
  }
  return all_intact ? 0 : 1;
}
