// BufferPool: reuse, the idle limit and its eviction order, buffers that
// outlive the pool, and allocation failures. Host memory from malloc stands in
// for pinned or device memory here (the pool never touches the bytes); the
// GPU tests use the CUDA-backed pools for real.
#include "daemon/cuda/buffer_pool.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "absl/status/status.h"

namespace axon::daemon {
namespace {

struct Heap {
  std::set<void*> live;
  uint64_t freed = 0;
  bool fail = false;
  std::shared_ptr<BufferPool> Pool(size_t keep) {
    return BufferPool::Create(
        keep,
        [this](size_t bytes) -> absl::StatusOr<void*> {
          if (fail) return absl::ResourceExhaustedError("out of memory");
          void* p = std::malloc(bytes);
          live.insert(p);
          return p;
        },
        [this](void* p, size_t) {
          live.erase(p);
          std::free(p);
          ++freed;
        });
  }
};

TEST(BufferPool, ReusesAReturnedBufferOfTheSameSize) {
  Heap heap;
  auto pool = heap.Pool(1 << 20);
  uint8_t* first = nullptr;
  {
    auto b = pool->Take(5000);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ((*b)->size, 8192u);  // power of two
    first = (*b)->data;
  }
  EXPECT_EQ(pool->idle_bytes(), 8192u);
  auto again = pool->Take(8000);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->data, first);
  EXPECT_EQ(pool->allocations(), 1u);
  auto other = pool->Take(100000);  // another size: a new buffer
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(pool->allocations(), 2u);
}

TEST(BufferPool, CountsTheBytesHeldUntilTheyComeBack) {
  Heap heap;
  auto pool = heap.Pool(1 << 20);
  EXPECT_EQ(pool->in_use_bytes(), 0u);
  auto a = pool->Take(5000);   // 8 KiB
  auto b = pool->Take(70000);  // 128 KiB
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(pool->in_use_bytes(), 8192u + 131072u);
  a->reset();
  EXPECT_EQ(pool->in_use_bytes(), 131072u);
  EXPECT_EQ(pool->idle_bytes(), 8192u);
  auto again = pool->Take(8000);  // the idle one, in use again
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(pool->in_use_bytes(), 8192u + 131072u);
  EXPECT_EQ(pool->idle_bytes(), 0u);
  again->reset();
  b->reset();
  EXPECT_EQ(pool->in_use_bytes(), 0u);
}

TEST(BufferPool, KeepsAtMostItsLimitIdleEvictingTheSmallest) {
  Heap heap;
  auto pool = heap.Pool(64 << 10);
  {
    auto small = pool->Take(4096);
    auto mid = pool->Take(16 << 10);
    auto big = pool->Take(32 << 10);
    ASSERT_TRUE(small.ok() && mid.ok() && big.ok());
  }  // released: small, mid, big: 52 KiB idle
  EXPECT_EQ(pool->idle_bytes(), 52u << 10);
  {
    auto more = pool->Take(32 << 10);   // the idle 32 KiB one
    auto extra = pool->Take(32 << 10);  // a new one
    ASSERT_TRUE(more.ok() && extra.ok());
    EXPECT_EQ(pool->allocations(), 4u);
  }
  // Returning two 32 KiB buffers with 20 KiB idle: the 4 and 16 KiB ones go.
  EXPECT_EQ(pool->idle_bytes(), 64u << 10);
  EXPECT_EQ(heap.freed, 2u);
  // Larger than the limit: freed on return, never kept.
  { ASSERT_TRUE(pool->Take(128 << 10).ok()); }
  EXPECT_EQ(heap.freed, 3u);
  EXPECT_EQ(heap.live.size(), 2u);
}

TEST(BufferPool, ABufferOutlivingThePoolFreesItself) {
  Heap heap;
  auto pool = heap.Pool(1 << 20);
  auto kept = pool->Take(4096);
  ASSERT_TRUE(kept.ok());
  { ASSERT_TRUE(pool->Take(8192).ok()); }
  pool.reset();  // frees the idle one
  EXPECT_EQ(heap.live.size(), 1u);
  kept->reset();
  EXPECT_TRUE(heap.live.empty());
}

TEST(BufferPool, AllocationFailuresAreReturned) {
  Heap heap;
  heap.fail = true;
  auto pool = heap.Pool(1 << 20);
  auto b = pool->Take(4096);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pool->allocations(), 0u);
}

}  // namespace
}  // namespace axon::daemon
