// An allocator for std::allocate_shared that keeps freed blocks of its one
// type for reuse, per thread and then in a pool the threads share. A call's
// state on either side is a few kilobytes, past what malloc's per-thread
// cache holds, and one is made and freed per call (on different threads,
// the caller's and the progress thread); glibc then takes its arena lock
// and sorts free chunks each time, and a pool behind one mutex was as
// contended. Internal to libaxon.
#pragma once

#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

namespace axon::internal {

template <typename T>
class Recycled {
 public:
  using value_type = T;
  // Blocks kept at most per type and thread (kLocal), and in the pool the
  // threads share (kKeep): about the calls a busy client has in flight.
  // None under AddressSanitizer, so that it sees every state freed and
  // catches a use after free.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr size_t kKeep = 0;
#else
  static constexpr size_t kKeep = 1024;
#endif
  static constexpr size_t kLocal = 64;
  static constexpr size_t kBatch = kLocal / 2;  // moved between a thread and the pool at once

  Recycled() = default;
  template <typename U>
  Recycled(const Recycled<U>&) noexcept {}  // NOLINT: rebinding, as allocators do

  T* allocate(size_t n) {
    if (n == 1 && kKeep > 0) {
      Cache& cache = TheCache();
      if (cache.count == 0) cache.Refill();
      if (cache.count > 0) return static_cast<T*>(cache.blocks[--cache.count]);
    }
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{alignof(T)}));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n == 1 && kKeep > 0) {
      Cache& cache = TheCache();
      if (cache.count == kLocal) cache.Spill(kBatch);
      cache.blocks[cache.count++] = p;
      return;
    }
    Free(p);
  }
  template <typename U>
  bool operator==(const Recycled<U>&) const noexcept {
    return true;
  }

 private:
  static void Free(void* p) { ::operator delete (p, std::align_val_t{alignof(T)}); }

  struct Pool {
    std::mutex mu;
    std::vector<void*> free;
  };
  // Never destroyed: a call's state may be freed during exit, after static
  // destructors would have run (a Python interpreter finishing, a global
  // Client). What it keeps stays reachable from here.
  static Pool& ThePool() {
    static Pool* pool = new Pool;
    return *pool;
  }

  // Each thread's blocks, taken and given back without a lock. A state is
  // often made on one thread and freed on another (the caller's and the
  // progress thread): the freeing thread's blocks go to the pool a batch at
  // a time, and the making thread takes them from there a batch at a time.
  struct Cache {
    void* blocks[kLocal];
    size_t count = 0;
    void Refill() {
      Pool& pool = ThePool();
      std::lock_guard<std::mutex> lock(pool.mu);
      while (count < kBatch && !pool.free.empty()) {
        blocks[count++] = pool.free.back();
        pool.free.pop_back();
      }
    }
    void Spill(size_t blocks_out) {
      Pool& pool = ThePool();
      std::lock_guard<std::mutex> lock(pool.mu);
      for (size_t i = 0; i < blocks_out && count > 0; ++i) {
        void* block = blocks[--count];
        if (pool.free.size() < kKeep) {
          pool.free.push_back(block);
        } else {
          Free(block);
        }
      }
    }
    ~Cache() { Spill(count); }  // the thread ends: its blocks to the pool
  };
  static Cache& TheCache() {
    thread_local Cache cache;
    return cache;
  }
};

}  // namespace axon::internal
