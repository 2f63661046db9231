// Registered memory handed out in blocks, for calls: the frames of requests
// and replies and the buffers replies land in (host), and tensors that
// arrive as messages of their own (host or one GPU). Internal to libaxon.
//
// Small blocks come from arenas (one registration each, carved by size
// class and never returned to the daemon while the pool lives); large ones
// get a buffer each, kept for reuse once given back. A block given back goes
// to its class's free list: the pool holds at most `max_bytes`, past which
// Get fails RESOURCE_EXHAUSTED naming the limit.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "axon/client.h"

namespace axon::internal {

struct Block {
  void* data = nullptr;
  const Buffer* buffer = nullptr;  // registered memory holding the block
  size_t offset = 0;               // within `buffer`
  size_t size = 0;
};

class MemoryPool {
 public:
  // Registers `bytes` of memory (AllocateHost, AllocateCuda). Shared, not
  // unique: the pointer deletes the buffer as the type it was made as.
  using Allocator = std::function<absl::StatusOr<std::shared_ptr<Buffer>>(size_t bytes)>;

  MemoryPool(std::string name, Allocator allocate, size_t arena_bytes, size_t max_bytes);
  // A block of at least `bytes` (at least 1), 64-byte aligned; back to the
  // pool when the last copy of the pointer goes, which may outlive the pool.
  absl::StatusOr<std::shared_ptr<Block>> Get(size_t bytes);
  // Bytes registered by the pool, in use or idle.
  size_t bytes_held() const;

  // Blocks up to this size come from arenas.
  static constexpr size_t kSmallest = 256;

 private:
  struct Core;
  std::shared_ptr<Core> core_;
};

}  // namespace axon::internal
