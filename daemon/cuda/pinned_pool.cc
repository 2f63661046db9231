#include "daemon/cuda/pinned_pool.h"

#include <bit>

#include "common/cuda/driver.h"

namespace axon::daemon {

PinnedPool::~PinnedPool() {
  for (auto& [size, data] : idle_) cuda::FreePinned(data, size);
}

absl::StatusOr<std::shared_ptr<PinnedPool::Buffer>> PinnedPool::Take(size_t bytes) {
  const size_t size = std::bit_ceil(std::max<size_t>(bytes, 4096));
  uint8_t* data = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = idle_.find(size); it != idle_.end()) {
      data = it->second;
      idle_bytes_ -= size;
      idle_.erase(it);
    }
  }
  if (data == nullptr) {
    auto fresh = cuda::AllocatePinned(size);
    if (!fresh.ok()) return fresh.status();
    data = static_cast<uint8_t*>(*fresh);
    std::lock_guard<std::mutex> lock(mu_);
    ++allocations_;
  }
  std::weak_ptr<PinnedPool> pool = weak_from_this();
  return std::shared_ptr<Buffer>(new Buffer{data, size}, [pool](Buffer* b) {
    if (auto p = pool.lock()) {
      p->Give(b);
    } else {
      cuda::FreePinned(b->data, b->size);
    }
    delete b;
  });
}

void PinnedPool::Give(Buffer* buffer) {
  std::vector<std::pair<size_t, uint8_t*>> evicted;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
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
  for (auto& [size, data] : evicted) cuda::FreePinned(data, size);
}

uint64_t PinnedPool::allocations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return allocations_;
}

}  // namespace axon::daemon
