#include <cuda_runtime.h>

#include "tests/gpu/kernels.h"

namespace axon::testing::gpu {
namespace {

__global__ void Fill(uint8_t* data, size_t bytes, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < bytes;
       i += size_t{gridDim.x} * blockDim.x) {
    data[i] = static_cast<uint8_t>((i * 131u) ^ (i >> 11) ^ (seed * 7u));
  }
}

__global__ void Sum(const uint8_t* data, size_t bytes, unsigned long long* out) {
  unsigned long long local = 0;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < bytes;
       i += size_t{gridDim.x} * blockDim.x) {
    local += static_cast<unsigned long long>(data[i]) * ((i + 1) * 0x9E3779B97F4A7C15ull);
  }
  atomicAdd(out, local);
}

constexpr int kBlocks = 1024, kThreads = 256;

}  // namespace

bool FillDevice(void* data, size_t bytes, uint64_t seed) {
  Fill<<<kBlocks, kThreads>>>(static_cast<uint8_t*>(data), bytes, seed);
  return cudaGetLastError() == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess;
}

bool ChecksumDevice(const void* data, size_t bytes, uint64_t* sum) {
  unsigned long long* out = nullptr;
  if (cudaMalloc(&out, sizeof(*out)) != cudaSuccess) return false;
  bool ok = cudaMemset(out, 0, sizeof(*out)) == cudaSuccess;
  Sum<<<kBlocks, kThreads>>>(static_cast<const uint8_t*>(data), bytes, out);
  unsigned long long host = 0;
  ok = ok && cudaGetLastError() == cudaSuccess &&
       cudaMemcpy(&host, out, sizeof(host), cudaMemcpyDeviceToHost) == cudaSuccess;
  cudaFree(out);
  *sum = host;
  return ok;
}

void FillHost(void* data, size_t bytes, uint64_t seed) {
  auto* p = static_cast<uint8_t*>(data);
  for (size_t i = 0; i < bytes; ++i) p[i] = PatternByte(i, seed);
}

uint64_t ChecksumHost(const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes; ++i) sum += p[i] * Weight(i);
  return sum;
}

}  // namespace axon::testing::gpu
