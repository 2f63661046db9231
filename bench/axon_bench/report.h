// axon-bench's output: a readable table, JSON, and an SVG plot.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace axon::bench {

// One measured row: axon and its baseline at one size, memory and placement.
struct Row {
  // "local" (one daemon) or "remote" (two daemons); GPU rows also "direct",
  // "handle", "peer"... (gpu-bench's)
  std::string placement;
  std::string memory = "host";
  size_t size = 0;
  int pairs = 1;
  std::string baseline_tls;  // UCX_TLS of the ucx_perftest baseline
  // axon; 0 where not measured
  double lat_min_us = 0, lat_p50_us = 0, lat_p99_us = 0;
  double rate = 0, gbps = 0;
  // The stream's share of wall time each daemon's UCX thread was busy
  // (node-a: the sender's; node-b: the receiver's, remote only); -1 where
  // not measured.
  double busy_a = -1, busy_b = -1;
  // ucx_perftest
  double base_lat_us = 0, base_rate = 0, base_gbps = 0;
  // One thread's memcpy of the same size between two buffers of this
  // process, in GB/s (local host rows from 1 MiB); 0 where not measured.
  double memcpy_gbps = 0;
  // The baseline when it is not ucx_perftest (GPU rows: "cudaMemcpy D2D"...).
  std::string baseline_name;
  std::string note;  // why something is missing
};

struct Run {
  std::string machine;  // uname, cores
  std::string ucx_version;
  std::string command;
  std::vector<Row> rows;
};

std::string Table(const Run& run);
std::string Json(const Run& run);
// Latency and bandwidth against size, axon and baseline, per placement.
std::string Svg(const Run& run);
absl::Status WriteFile(const std::string& path, const std::string& text);

}  // namespace axon::bench
