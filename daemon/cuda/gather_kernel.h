// One kernel that copies many small pieces of device memory: the GPU runs a
// thousand 16 KiB copies queued one by one (or as one cudaMemcpyBatchAsync)
// as a thousand copy-engine jobs of a few microseconds each, while one
// launch moves them all at memory bandwidth. The pieces travel in the
// kernel's parameters (up to 32 KiB since CUDA 12.1), so nothing has to stay
// alive after the launch returns.
#pragma once

#include <cstddef>
#include <cstdint>

namespace axon::daemon::gather {

struct Piece {
  void* to;
  const void* from;
  uint64_t bytes;  // at most kMaxPieceBytes
};

// Pieces per launch: 24 B each, under the 32,764-byte parameter limit.
inline constexpr size_t kMaxPieces = 1280;
// One thread block copies one piece; larger ones are split by the caller.
inline constexpr uint64_t kMaxPieceBytes = 64 * 1024;

// Launches the copies of `pieces[0..n)` (n <= kMaxPieces, every pointer
// device memory of the current device) on `stream` (a cudaStream_t).
// Returns the cudaError_t of the launch as an int (0 on success).
int Launch(const Piece* pieces, size_t n, void* stream);

}  // namespace axon::daemon::gather
