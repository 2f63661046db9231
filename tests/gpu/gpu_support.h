// Test support for the GPU tests: device memory from cudaMalloc on the
// current GPU (null without CUDA or when it fails), its checksum by kernel,
// and a daemon's status and stats.
#pragma once

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>

#include "axon/v1/admin.pb.h"
#include "tests/gpu/kernels.h"
#include "tests/support/axond.h"

#ifdef AXON_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace axon::testing {

// Device memory from cudaMalloc, freed at the end.
struct DeviceAllocation {
  void* data = nullptr;
  explicit DeviceAllocation(size_t bytes) {
#ifdef AXON_HAVE_CUDA
    if (cudaMalloc(&data, bytes) != cudaSuccess) data = nullptr;
#else
    (void)bytes;
#endif
  }
  ~DeviceAllocation() {
#ifdef AXON_HAVE_CUDA
    if (data != nullptr) cudaFree(data);
#endif
  }
  DeviceAllocation(const DeviceAllocation&) = delete;
  DeviceAllocation& operator=(const DeviceAllocation&) = delete;
};

inline uint64_t DeviceSum(const void* data, size_t bytes) {
  uint64_t sum = 0;
  EXPECT_TRUE(gpu::ChecksumDevice(data, bytes, &sum));
  return sum;
}

// A daemon's `axonctl --json status` (empty when it does not parse).
inline v1::StatusResponse Status(const Axond& axond) {
  v1::StatusResponse status;
  (void)google::protobuf::util::JsonStringToMessage(axond.Ctl({"--json", "status"}).out, &status);
  return status;
}

inline v1::StatsResponse Stats(const Axond& axond) {
  v1::StatsResponse stats;
  (void)google::protobuf::util::JsonStringToMessage(axond.Ctl({"--json", "stats"}).out, &stats);
  return stats;
}

#ifdef AXON_HAVE_CUDA
// Free memory on the current GPU, as CUDA reports it.
inline size_t FreeGpuBytes() {
  size_t free_bytes = 0, total = 0;
  (void)cudaMemGetInfo(&free_bytes, &total);
  return free_bytes;
}
#endif

}  // namespace axon::testing
