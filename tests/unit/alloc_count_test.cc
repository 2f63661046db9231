// The allocation counters (common/alloc_count.h) with the counting operator
// new linked in, as axond and call-bench have it: each thread's count, and
// the process's over threads.
#include "common/alloc_count.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace axon {
namespace {

// Allocations the compiler cannot drop.
std::vector<std::unique_ptr<int>> Allocate(int n) {
  std::vector<std::unique_ptr<int>> out;
  out.reserve(static_cast<size_t>(n));  // one allocation
  for (int i = 0; i < n; ++i) out.push_back(std::make_unique<int>(i));
  return out;
}

TEST(AllocCount, ThreadsCountTheirOwnAndTheProcessAllOfThem) {
  if (!AllocationsCounted()) GTEST_SKIP() << "not counted in this build (TSan)";
  const uint64_t process_before = ProcessAllocations();
  const uint64_t mine_before = ThreadAllocations();
  auto mine = Allocate(100);
  EXPECT_EQ(ThreadAllocations() - mine_before, 101u);

  constexpr int kThreads = 4;
  std::vector<uint64_t> counted(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&counted, t] {
      const uint64_t before = ThreadAllocations();
      auto theirs = Allocate(1000);
      counted[static_cast<size_t>(t)] = ThreadAllocations() - before;
    });
  }
  for (auto& t : threads) t.join();
  for (uint64_t c : counted) EXPECT_EQ(c, 1001u);
  // Starting the threads allocates too; none of it is lost.
  EXPECT_GE(ProcessAllocations() - process_before, 101u + kThreads * 1001u);
}

}  // namespace
}  // namespace axon
