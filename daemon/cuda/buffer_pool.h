// Bounce buffers for moving GPU data between daemons: pinned host buffers
// (the `staging` path) or device buffers this daemon allocated itself (the
// `direct` path, which UCX can send from and receive into). Allocating
// either is slow (milliseconds for large buffers), so buffers go back to the
// pool when their last holder lets go and are handed out again, in
// power-of-two sizes, up to `keep_bytes` kept idle (the smallest idle
// buffers go first when a returned one needs the room).
// Thread-safe; a buffer may outlive the pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"

namespace axon::daemon {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  using Allocate = std::function<absl::StatusOr<void*>(size_t bytes)>;
  using Free = std::function<void(void* data, size_t bytes)>;
  static std::shared_ptr<BufferPool> Create(size_t keep_bytes, Allocate allocate, Free free) {
    return std::shared_ptr<BufferPool>(
        new BufferPool(keep_bytes, std::move(allocate), std::move(free)));
  }
  // Page-locked host memory (cuda::AllocatePinned). Pinning runs in the
  // calling thread's current CUDA context: make the device that will copy
  // to or from it current first (else CUDA creates a context on device 0,
  // which the daemon may have no client on).
  static std::shared_ptr<BufferPool> Pinned(size_t keep_bytes);
  // Memory on the calling thread's current device (cuda::AllocateDevice).
  static std::shared_ptr<BufferPool> Device(size_t keep_bytes);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of at least `bytes` bytes; back to the pool when released.
  struct Buffer {
    uint8_t* data;
    size_t size;
  };
  absl::StatusOr<std::shared_ptr<Buffer>> Take(size_t bytes);

  uint64_t allocations() const;  // calls to `allocate` so far
  size_t idle_bytes() const;
  size_t in_use_bytes() const;  // taken and not given back yet

 private:
  BufferPool(size_t keep_bytes, Allocate allocate, Free free)
      : keep_bytes_(keep_bytes), allocate_(std::move(allocate)), free_(std::move(free)) {}
  void Give(Buffer* buffer);

  const size_t keep_bytes_;
  const Allocate allocate_;
  const Free free_;
  mutable std::mutex mu_;
  std::multimap<size_t, uint8_t*> idle_;  // size -> data
  size_t idle_bytes_ = 0;
  size_t in_use_bytes_ = 0;
  uint64_t allocations_ = 0;
};

}  // namespace axon::daemon
