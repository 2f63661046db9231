// Test support for GPU tests: a byte pattern and a position-weighted checksum,
// computed by CUDA kernels on device memory and by the same formulas on host
// memory, so a test can compare what landed anywhere with what was sent.
#pragma once

#include <cstddef>
#include <cstdint>

namespace axon::testing::gpu {

// Byte i of the pattern for `seed`.
inline uint8_t PatternByte(size_t i, uint64_t seed) {
  return static_cast<uint8_t>((i * 131u) ^ (i >> 11) ^ (seed * 7u));
}
// Sum over i of byte[i] * weight(i), mod 2^64: order- and position-sensitive.
inline uint64_t Weight(size_t i) { return (uint64_t{i} + 1) * 0x9E3779B97F4A7C15ull; }

// Device memory. Both synchronise before returning; false on a CUDA error.
bool FillDevice(void* data, size_t bytes, uint64_t seed);
bool ChecksumDevice(const void* data, size_t bytes, uint64_t* sum);

// Host memory, the same formulas.
void FillHost(void* data, size_t bytes, uint64_t seed);
uint64_t ChecksumHost(const void* data, size_t bytes);

}  // namespace axon::testing::gpu
