// Pinned host buffers for staging GPU data through host memory (the
// `staging` GPU path): cudaHostAlloc is slow (milliseconds for large
// buffers), so buffers go back to a pool when their last holder lets go and
// are handed out again, in power-of-two sizes, up to `keep_bytes` kept idle
// (the smallest idle buffers go first when a returned one needs the room).
// Thread-safe; a buffer may outlive the pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"

namespace axon::daemon {

class PinnedPool : public std::enable_shared_from_this<PinnedPool> {
 public:
  static std::shared_ptr<PinnedPool> Create(size_t keep_bytes) {
    return std::shared_ptr<PinnedPool>(new PinnedPool(keep_bytes));
  }
  ~PinnedPool();
  PinnedPool(const PinnedPool&) = delete;
  PinnedPool& operator=(const PinnedPool&) = delete;

  // A buffer of at least `bytes` bytes; back to the pool when released.
  // Pinning runs in the calling thread's current CUDA context: make the
  // device that will copy to or from it current first (else CUDA creates a
  // context on device 0, which the daemon may have no client on).
  struct Buffer {
    uint8_t* data;
    size_t size;
  };
  absl::StatusOr<std::shared_ptr<Buffer>> Take(size_t bytes);

  uint64_t allocations() const;  // cudaHostAlloc calls so far

 private:
  explicit PinnedPool(size_t keep_bytes) : keep_bytes_(keep_bytes) {}
  void Give(Buffer* buffer);

  const size_t keep_bytes_;
  mutable std::mutex mu_;
  std::multimap<size_t, uint8_t*> idle_;  // size -> data
  size_t idle_bytes_ = 0;
  uint64_t allocations_ = 0;
};

}  // namespace axon::daemon
