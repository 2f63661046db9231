#include "daemon/cuda/buffer_pool.h"

#include <bit>

#include "common/cuda/driver.h"

namespace axon::daemon {

std::shared_ptr<BufferPool> BufferPool::Pinned(size_t keep_bytes) {
  return Create(keep_bytes, &cuda::AllocatePinned, &cuda::FreePinned);
}

std::shared_ptr<BufferPool> BufferPool::Device(size_t keep_bytes) {
  return Create(keep_bytes, &cuda::AllocateDevice, &cuda::FreeDevice);
}

BufferPool::~BufferPool() {
  for (auto& [size, data] : idle_) free_(data, size);
}

absl::StatusOr<std::shared_ptr<BufferPool::Buffer>> BufferPool::Take(size_t bytes) {
  const size_t size = std::bit_ceil(std::max<size_t>(bytes, 4096));
  uint8_t* data = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = idle_.find(size); it != idle_.end()) {
      data = it->second;
      idle_bytes_ -= size;
      idle_.erase(it);
      in_use_bytes_ += size;
    }
  }
  if (data == nullptr) {
    auto fresh = allocate_(size);
    if (!fresh.ok()) return fresh.status();
    data = static_cast<uint8_t*>(*fresh);
    std::lock_guard<std::mutex> lock(mu_);
    ++allocations_;
    in_use_bytes_ += size;
  }
  std::weak_ptr<BufferPool> pool = weak_from_this();
  // A buffer that outlives the pool frees itself.
  return std::shared_ptr<Buffer>(new Buffer{data, size}, [pool, free = free_](Buffer* b) {
    if (auto p = pool.lock()) {
      p->Give(b);
    } else {
      free(b->data, b->size);
    }
    delete b;
  });
}

void BufferPool::Give(Buffer* buffer) {
  std::vector<std::pair<size_t, uint8_t*>> evicted;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_bytes_ -= buffer->size;
    if (buffer->size > keep_bytes_) {
      evicted.emplace_back(buffer->size, buffer->data);
    } else {
      // The buffer just used is the likeliest to be wanted again: smaller
      // idle ones make room for it.
      while (idle_bytes_ + buffer->size > keep_bytes_ && !idle_.empty()) {
        evicted.emplace_back(*idle_.begin());
        idle_bytes_ -= idle_.begin()->first;
        idle_.erase(idle_.begin());
      }
      idle_.emplace(buffer->size, buffer->data);
      idle_bytes_ += buffer->size;
    }
  }
  for (auto& [size, data] : evicted) free_(data, size);
}

uint64_t BufferPool::allocations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return allocations_;
}

size_t BufferPool::idle_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_bytes_;
}

size_t BufferPool::in_use_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_bytes_;
}

}  // namespace axon::daemon
