// Test support: device memory from cudaMalloc on a given GPU, freed at the
// end (data is null when the allocation failed).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace axon::testing {

struct OnDevice {
  int device;
  void* data = nullptr;
  OnDevice(int d, size_t bytes) : device(d) {
    if (cudaSetDevice(d) != cudaSuccess || cudaMalloc(&data, bytes) != cudaSuccess) data = nullptr;
  }
  ~OnDevice() {
    cudaSetDevice(device);
    if (data != nullptr) cudaFree(data);
  }
  OnDevice(const OnDevice&) = delete;
  OnDevice& operator=(const OnDevice&) = delete;
};

}  // namespace axon::testing
