// call-bench's measurements (workload.h).
#include "bench/call_bench/workload.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/alloc_count.h"

namespace axon::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

absl::StatusOr<std::unique_ptr<Buffer>> Allocate(Client& client, uint64_t bytes, bool gpu) {
  if (gpu) {
    auto b = client.AllocateCuda(bytes);
    if (!b.ok()) return b.status();
    return std::make_unique<CudaBuffer>(*std::move(b));
  }
  auto b = client.AllocateHost(bytes);
  if (!b.ok()) return b.status();
  std::memset(b->data(), 7, bytes);
  return std::make_unique<HostBuffer>(*std::move(b));
}

struct RateSample {
  double calls_per_s = 0;
  double first_reply_us = 0;  // the first call's end, from the start
};

// Calls per second of `calls` echo calls with `window` in flight: the
// window's oldest is waited for while the rest fly.
absl::StatusOr<RateSample> Rate(Caller& caller, const Endpoints& e, const Tensor& request,
                                const std::vector<Tensor>& into, int calls, int window) {
  RateSample sample;
  std::deque<std::pair<PendingCall, int>> flying;
  std::vector<int> free_slots;
  for (int i = static_cast<int>(into.size()) - 1; i >= 0; --i) free_slots.push_back(i);
  const auto start = Clock::now();
  for (int next = 0, done = 0; done < calls;) {
    while (next < calls && static_cast<int>(flying.size()) < window) {
      const int slot = free_slots.back();
      free_slots.pop_back();
      auto call = caller.CallAsync(e.echo, "echo", "", {request},
                                   {.timeout_ms = 60000, .reply_into = {&into[slot], 1}});
      if (!call.ok()) return call.status();
      flying.emplace_back(*call, slot);
      ++next;
    }
    auto [call, slot] = flying.front();
    flying.pop_front();
    auto reply = call.Wait();
    if (!reply.ok()) return reply.status();
    free_slots.push_back(slot);
    if (done++ == 0) sample.first_reply_us = Micros(Clock::now() - start);
  }
  sample.calls_per_s = calls / std::chrono::duration<double>(Clock::now() - start).count();
  return sample;
}

}  // namespace

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t i = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(i, values.size() - 1)];
}

absl::StatusOr<CallSample> MeasureCalls(const Endpoints& e, uint64_t bytes, bool gpu,
                                        int iterations, int calls, int window,
                                        int sustained_calls) {
  Caller caller(*e.caller, "caller");
  auto in = Allocate(*e.caller, bytes, gpu);
  if (!in.ok()) return in.status();
  const auto shape = static_cast<int64_t>(bytes);
  auto request = Tensor::Of(**in, 0, dtype::kUInt8, {shape});
  if (!request.ok()) return request.status();
  // Replies land in the caller's own tensors (one per call in flight).
  const int slots = std::max(window, 1);
  auto out = Allocate(*e.caller, bytes * static_cast<uint64_t>(slots), gpu);
  if (!out.ok()) return out.status();
  std::vector<Tensor> into;
  for (int i = 0; i < slots; ++i) {
    auto t = Tensor::Of(**out, bytes * static_cast<uint64_t>(i), dtype::kUInt8, {shape});
    if (!t.ok()) return t.status();
    into.push_back(*t);
  }
  CallSample sample;
  const int warmup = std::max(iterations / 10, 2);
  for (int i = 0; i < iterations + warmup; ++i) {
    const auto start = Clock::now();
    auto reply = caller.Call(e.echo, "echo", "", {*request},
                             {.timeout_ms = 60000, .reply_into = {&into[0], 1}});
    const auto took = Clock::now() - start;
    if (!reply.ok()) return reply.status();
    if (reply->tensors.size() != 1 || reply->tensors[0].bytes() != bytes) {
      return absl::DataLossError("the echo came back short");
    }
    if (i >= warmup) sample.round_trips_us.push_back(Micros(took));
  }
  const auto busy_before = e.daemon_busy ? e.daemon_busy() : std::pair<double, double>{};
  const uint64_t allocations_before = ProcessAllocations();
  auto rate = Rate(caller, e, *request, into, calls, window);
  if (!rate.ok()) return rate.status();
  if (AllocationsCounted()) {
    sample.client_allocations =
        static_cast<double>(ProcessAllocations() - allocations_before) / calls;
  }
  sample.calls = static_cast<uint64_t>(calls);
  sample.calls_per_s = rate->calls_per_s;
  sample.burst_first_reply_us = rate->first_reply_us;
  if (e.daemon_busy) {
    const auto busy_after = e.daemon_busy();
    sample.caller_daemon_busy_us = (busy_after.first - busy_before.first) * 1e6 / calls;
    sample.server_daemon_busy_us = (busy_after.second - busy_before.second) * 1e6 / calls;
  }
  if (sustained_calls > 0) {
    auto sustained = Rate(caller, e, *request, into, sustained_calls, window);
    if (!sustained.ok()) return sustained.status();
    sample.sustained_calls_per_s = sustained->calls_per_s;
    sample.calls += static_cast<uint64_t>(sustained_calls);
  }
  return sample;
}

absl::StatusOr<std::vector<double>> MeasurePingPong(const Endpoints& e, uint64_t bytes, bool gpu,
                                                    int iterations) {
  auto a = Allocate(*e.caller, 2 * bytes, gpu);
  auto b = Allocate(*e.server, bytes, gpu);
  if (!a.ok()) return a.status();
  if (!b.ok()) return b.status();
  const int warmup = std::max(iterations / 10, 2);
  const int total = iterations + warmup;
  std::atomic<bool> failed{false}, ready{false};
  // The other side: receive, send back, for every round. Each round's
  // receive is posted before the previous reply leaves, so no message finds
  // none posted (it would land in the server's receive area instead).
  std::thread pong([&] {
    auto recv = e.server->PostRecv("pong", 1, **b, 0, bytes, {.timeout_ms = 60000});
    // A round trip on the same ring: the daemon has taken the receive.
    if (!e.server->PingDaemon().ok()) failed = true;
    ready = true;
    for (int i = 0; i < total && !failed; ++i) {
      if (!recv.ok() || !e.server->Wait(*recv, 60000).ok()) {
        failed = true;
        return;
      }
      if (i + 1 < total) recv = e.server->PostRecv("pong", 1, **b, 0, bytes, {.timeout_ms = 60000});
      auto send = e.server->Send("pong", e.caller->node_name() + "/caller", 2, **b, 0, bytes,
                                 {.timeout_ms = 60000});
      if (!send.ok() || !e.server->Wait(*send, 60000).ok()) failed = true;
    }
  });
  while (!ready) std::this_thread::yield();
  std::vector<double> trips;
  absl::Status status;
  for (int i = 0; i < total; ++i) {
    const auto start = Clock::now();
    auto recv = e.caller->PostRecv("caller", 2, **a, bytes, bytes, {.timeout_ms = 60000});
    auto send = e.caller->Send("caller", e.pong, 1, **a, 0, bytes, {.timeout_ms = 60000});
    if (!recv.ok() || !send.ok()) {
      status = !recv.ok() ? recv.status() : send.status();
      break;
    }
    auto sent = e.caller->Wait(*send, 60000);
    auto got = e.caller->Wait(*recv, 60000);
    if (!sent.ok() || !got.ok() || !sent->status.ok() || !got->status.ok()) {
      status = absl::InternalError("a ping-pong message failed");
      break;
    }
    if (i >= warmup) trips.push_back(Micros(Clock::now() - start));
  }
  if (!status.ok()) failed = true;
  pong.join();
  if (!status.ok()) return status;
  if (failed) return absl::InternalError("the ping-pong's other side failed");
  return trips;
}

}  // namespace axon::bench
