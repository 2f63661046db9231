#include <cuda_runtime.h>

#include "daemon/cuda/gather_kernel.h"

namespace axon::daemon::gather {
namespace {

struct Args {
  Piece pieces[kMaxPieces];
};
static_assert(sizeof(Args) <= 32764, "kernel parameters are limited to 32,764 bytes");

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) Copy(const __grid_constant__ Args args) {
  const Piece& p = args.pieces[blockIdx.x];
  const uint64_t bytes = p.bytes;
  const auto to = reinterpret_cast<uintptr_t>(p.to);
  const auto from = reinterpret_cast<uintptr_t>(p.from);
  if (((to | from | bytes) & 15) == 0) {
    auto* t = reinterpret_cast<uint4*>(to);
    const auto* f = reinterpret_cast<const uint4*>(from);
    for (uint64_t i = threadIdx.x; i < bytes / 16; i += kThreads) t[i] = f[i];
    return;
  }
  // Offsets or lengths off 16 bytes (a KV block rarely is): bytewise.
  auto* t = reinterpret_cast<uint8_t*>(to);
  const auto* f = reinterpret_cast<const uint8_t*>(from);
  for (uint64_t i = threadIdx.x; i < bytes; i += kThreads) t[i] = f[i];
}

}  // namespace

int Launch(const Piece* pieces, size_t n, void* stream) {
  if (n == 0) return cudaSuccess;
  if (n > kMaxPieces) return cudaErrorInvalidValue;
  Args args;
  for (size_t i = 0; i < n; ++i) args.pieces[i] = pieces[i];
  Copy<<<static_cast<unsigned>(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  return cudaGetLastError();
}

}  // namespace axon::daemon::gather
