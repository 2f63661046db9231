// call-bench's measurements: an echo call's round trip and its rate with
// many in flight, and the bare message ping-pong it is compared with, for
// host or GPU tensors of one size.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "axon/call.h"

namespace axon::bench {

struct Endpoints {
  Client* caller = nullptr;  // bound to "caller"
  Client* server = nullptr;  // bound to "echo" (serving) and "pong" (ping-pong)
  std::string echo, pong;    // their addresses as the caller names them
  // Seconds each daemon's UCX thread has been busy so far (caller's, then
  // server's); unset: not measured.
  std::function<std::pair<double, double>()> daemon_busy;
};

struct CallSample {
  std::vector<double> round_trips_us;  // sequential calls
  double calls_per_s = 0;              // `calls` calls, `window` in flight
  double sustained_calls_per_s = 0;    // `sustained_calls` calls, the same window (0: not run)
  // From the rate's start (the window's calls submitted at once) to its
  // first reply: how long the burst takes to fill the stages it crosses.
  double burst_first_reply_us = 0;
  uint64_t calls = 0;  // calls made with many in flight (both rates)
  // Each daemon's UCX thread busy time per call while the rate ran (caller's
  // daemon, server's): which side bounds the rate. -1: not measured.
  double caller_daemon_busy_us = -1, server_daemon_busy_us = -1;
  // Heap allocations per call in this process (both clients' threads: the
  // caller's and the server's) while the rate ran. -1: not counted.
  double client_allocations = -1;
};

// `iterations` sequential echo calls of one tensor of `bytes` (uint8, on
// the GPU when `gpu`, replying into the caller's own tensor), then `calls`
// calls with `window` in flight, then `sustained_calls` more the same way
// (a rate less swayed by the window's ramp at start and end).
absl::StatusOr<CallSample> MeasureCalls(const Endpoints& e, uint64_t bytes, bool gpu,
                                        int iterations, int calls, int window, int sustained_calls);

// The same bytes as a bare message there and back (posted receives on both
// sides): the round trip a call is compared with.
absl::StatusOr<std::vector<double>> MeasurePingPong(const Endpoints& e, uint64_t bytes, bool gpu,
                                                    int iterations);

double Percentile(std::vector<double> values, double q);

}  // namespace axon::bench
