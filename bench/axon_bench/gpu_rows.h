// axon-bench's GPU rows. They come from gpu-bench, which is built beside
// axon-bench where the CUDA toolkit is. axon-bench runs it as a child and
// folds its JSON into its own rows, so that one command covers host and GPU
// memory while axon-bench itself needs no CUDA.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/axon_bench/report.h"

namespace axon::bench {

struct GpuRowsOptions {
  std::string gpu_bench;  // the program; empty: next to this one
  std::string axond, perftest, ucx_libdir, run_dir;
  int runs = 3;
  bool quick = false;
};

// The rows of one gpu-bench run, memory "cuda". The bandwidth rows carry
// gpu-bench's baseline (cudaMemcpy, the pinned-staging limit, ucx_perftest
// -m cuda) in Row::baseline_name. The round-trip rows carry one-way latency,
// i.e. the round trip / 2. No rows and a note when the machine has no GPU.
// An error when gpu-bench is missing or fails.
absl::StatusOr<std::vector<Row>> GpuRows(const GpuRowsOptions& options, std::string* note);

// Reads gpu-bench's JSON (its --json output) into rows; exposed for tests.
absl::StatusOr<std::vector<Row>> ParseGpuBenchJson(const std::string& json);

}  // namespace axon::bench
