#include "bench/soak/roles.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "axon/call.h"
#include "axon/client.h"

namespace axon::soak {
namespace {

std::atomic<bool> stop{false};

struct Counts {
  std::atomic<uint64_t> calls{0}, messages{0}, errors{0};
  std::mutex mu;
  std::string last_error;  // guarded by mu
  void Error(const absl::Status& st) {
    errors.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    last_error = std::string(st.message()).substr(0, 160);
  }
  void Print() {
    std::lock_guard<std::mutex> lock(mu);
    std::printf("calls %llu messages %llu errors %llu last-error %s\n",
                static_cast<unsigned long long>(calls.load()),
                static_cast<unsigned long long>(messages.load()),
                static_cast<unsigned long long>(errors.load()),
                last_error.empty() ? "-" : last_error.c_str());
    std::fflush(stdout);
  }
};

absl::StatusOr<std::unique_ptr<Client>> ConnectWithRetry(const RoleOptions& o) {
  absl::Status last;
  for (int i = 0; i < 100; ++i) {
    auto c =
        Client::Connect({.socket_path = o.socket, .client_name = o.name, .progress_thread = true});
    if (c.ok()) return c;
    last = c.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

void PrintUntilStopped(Counts& counts) {
  while (!stop.load()) {
    counts.Print();
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  counts.Print();
}

}  // namespace

int RunServer(const RoleOptions& o) {
  ::signal(SIGTERM, [](int) { stop.store(true); });
  auto client = ConnectWithRetry(o);
  if (!client.ok()) {
    std::fprintf(stderr, "server %s: %s\n", o.name.c_str(), client.status().ToString().c_str());
    return 1;
  }
  Counts counts;
  if (!(*client)->BindEndpoint(o.name).ok() || !(*client)->BindEndpoint(o.name + "-sink").ok()) {
    std::fprintf(stderr, "server %s: cannot bind its endpoints\n", o.name.c_str());
    return 1;
  }
  auto area = (*client)->AllocateHost(64 << 20);
  if (!area.ok() || !(*client)->SetReceiveArea(*area, 256 << 10).ok()) {
    std::fprintf(stderr, "server %s: no receive area\n", o.name.c_str());
    return 1;
  }
  Server server(**client, o.name, ServerOptions{.concurrency = 4});
  server.Handle("echo", [&counts](const Request& r) -> absl::StatusOr<Reply> {
    counts.calls.fetch_add(1);
    return Reply{.header = std::string(r.header), .tensors = r.tensors};
  });
  if (auto st = server.Start(); !st.ok()) {
    std::fprintf(stderr, "server %s: %s\n", o.name.c_str(), st.ToString().c_str());
    return 1;
  }
  std::thread sink([&] {
    while (!stop.load()) {
      auto m = (*client)->Receive(o.name + "-sink", 200);
      if (!m.ok()) {
        if (m.status().code() != absl::StatusCode::kDeadlineExceeded) counts.Error(m.status());
        continue;
      }
      counts.messages.fetch_add(1);
      (void)(*client)->Release(*m);
    }
  });
  PrintUntilStopped(counts);
  sink.join();
  server.Stop();
  return 0;
}

int RunClient(const RoleOptions& o) {
  auto client = ConnectWithRetry(o);
  if (!client.ok()) {
    std::fprintf(stderr, "client %s: %s\n", o.name.c_str(), client.status().ToString().c_str());
    return 1;
  }
  Counts counts;
  if (auto st = (*client)->BindEndpoint(o.name); !st.ok()) {
    std::fprintf(stderr, "client %s: %s\n", o.name.c_str(), st.status().ToString().c_str());
    return 1;
  }
  auto buffer = (*client)->AllocateHost(4 << 20);
  if (!buffer.ok()) return 1;
  std::thread printer([&] { PrintUntilStopped(counts); });
  Caller caller(**client, o.name);
  std::mt19937 random(static_cast<unsigned>(::getpid()));
  const std::string servers[2] = {o.node_a + "/srv-a", o.node_b + "/srv-b"};
  std::deque<PendingCall> in_flight;
  for (uint64_t i = 0;; ++i) {
    const size_t bytes = size_t{4096} << (random() % 7);  // 4 KiB to 256 KiB
    const std::string& to = servers[i % 2];
    auto t =
        Tensor::Of(*buffer, (i % 8) * (256 << 10), dtype::kUInt8, {static_cast<int64_t>(bytes)});
    if (!t.ok()) return 1;
    auto call = caller.CallAsync(to, "echo", "soak", {*t}, {.timeout_ms = 10000});
    if (call.ok()) {
      in_flight.push_back(*std::move(call));
    } else {
      counts.Error(call.status());
    }
    while (in_flight.size() >= 16 || (!in_flight.empty() && in_flight.front().done())) {
      auto reply = in_flight.front().Wait();
      in_flight.pop_front();
      if (reply.ok()) {
        counts.calls.fetch_add(1);
      } else {
        counts.Error(reply.status());
      }
    }
    if (i % 4 == 0) {  // a message to a sink, every fourth round
      auto send = (*client)->Send(o.name, to + "-sink", 1, *buffer, (2 << 20), bytes,
                                  {.timeout_ms = 10000});
      if (!send.ok()) {
        counts.Error(send.status());
        continue;
      }
      auto done = (*client)->Wait(*send, 15000);
      if (done.ok() && done->status.ok()) {
        counts.messages.fetch_add(1);
      } else {
        counts.Error(done.ok() ? done->status : done.status());
      }
    }
  }
}

}  // namespace axon::soak
