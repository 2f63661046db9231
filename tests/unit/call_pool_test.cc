// libaxon's call pool over fake registered memory: size classes, reuse,
// large blocks, the byte limit, and blocks that outlive the pool.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "client/lib/pool.h"

namespace axon::internal {
namespace {

// Registered memory without a daemon: a Buffer with no session.
class FakeBuffer final : public Buffer {
 public:
  explicit FakeBuffer(size_t size)
      : Buffer(nullptr, std::aligned_alloc(64, size), size, ++next_id_, -1, nullptr) {
    data_keep_ = data();
  }
  ~FakeBuffer() { std::free(data_keep_); }

 private:
  static inline uint64_t next_id_ = 0;
  void* data_keep_ = nullptr;
};

struct Counting {
  int allocations = 0;
  MemoryPool::Allocator allocator() {
    return [this](size_t bytes) -> absl::StatusOr<std::shared_ptr<Buffer>> {
      ++allocations;
      return std::make_shared<FakeBuffer>(bytes);
    };
  }
};

TEST(CallPool, SmallBlocksComeFromOneArenaAndAreReused) {
  Counting count;
  MemoryPool pool("test", count.allocator(), 1 << 20, 64 << 20);
  std::set<void*> seen;
  std::vector<std::shared_ptr<Block>> held;
  for (int i = 0; i < 100; ++i) {
    auto b = pool.Get(1000);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ((*b)->size, 1024u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*b)->data) % 64, 0u);
    EXPECT_TRUE(seen.insert((*b)->data).second);
    held.push_back(*b);
  }
  EXPECT_EQ(count.allocations, 1);
  void* first = held.front()->data;
  held.clear();
  auto again = pool.Get(600);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(seen.count((*again)->data));  // a freed block came back
  EXPECT_EQ(count.allocations, 1);
  (void)first;
}

TEST(CallPool, LargeBlocksGetTheirOwnBufferKeptForReuse) {
  Counting count;
  MemoryPool pool("test", count.allocator(), 1 << 20, 64 << 20);
  void* data;
  {
    auto b = pool.Get(3 << 20);
    ASSERT_TRUE(b.ok());
    EXPECT_GE((*b)->size, 3u << 20);
    EXPECT_EQ((*b)->offset, 0u);
    data = (*b)->data;
  }
  auto again = pool.Get((3 << 20) - 100);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->data, data);
  EXPECT_EQ(count.allocations, 1);
}

TEST(CallPool, TheLimitIsRefusedWithItsName) {
  Counting count;
  MemoryPool pool("test", count.allocator(), 1 << 20, 8 << 20);
  auto a = pool.Get(6 << 20);
  ASSERT_TRUE(a.ok());
  auto b = pool.Get(6 << 20);
  ASSERT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(b.status().message().find("test call pool"), std::string::npos);
  a->reset();
  // An idle large buffer is let go to make room for a different size.
  EXPECT_TRUE(pool.Get(7 << 20).ok());
}

TEST(CallPool, BlocksOutliveThePool) {
  Counting count;
  std::shared_ptr<Block> kept;
  {
    MemoryPool pool("test", count.allocator(), 1 << 20, 8 << 20);
    auto b = pool.Get(100);
    ASSERT_TRUE(b.ok());
    kept = *b;
  }
  std::memset(kept->data, 1, kept->size);  // still mapped
  kept.reset();
}

}  // namespace
}  // namespace axon::internal
