// An allocator for std::allocate_shared that keeps freed blocks of its one
// type for reuse. A call's state on either side is a few kilobytes, past
// what malloc's per-thread cache holds, and one is made and freed per call
// (on different threads, the caller's and the progress thread); glibc then
// takes its arena lock and sorts free chunks each time. Internal to libaxon.
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
  // Blocks kept at most per type: the calls a busy client has in flight.
  // None under AddressSanitizer, so that it sees every state freed and
  // catches a use after free.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr size_t kKeep = 0;
#else
  static constexpr size_t kKeep = 1024;
#endif

  Recycled() = default;
  template <typename U>
  Recycled(const Recycled<U>&) noexcept {}  // NOLINT: rebinding, as allocators do

  T* allocate(size_t n) {
    if (n == 1) {
      Pool& pool = ThePool();
      std::lock_guard<std::mutex> lock(pool.mu);
      if (!pool.free.empty()) {
        void* block = pool.free.back();
        pool.free.pop_back();
        return static_cast<T*>(block);
      }
    }
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{alignof(T)}));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n == 1) {
      Pool& pool = ThePool();
      std::lock_guard<std::mutex> lock(pool.mu);
      if (pool.free.size() < kKeep) {
        pool.free.push_back(p);
        return;
      }
    }
    ::operator delete (p, std::align_val_t{alignof(T)});
  }
  template <typename U>
  bool operator==(const Recycled<U>&) const noexcept {
    return true;
  }

 private:
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
};

}  // namespace axon::internal
