// Mailbox: items from many threads reach the owner in each putter's order,
// none lost, and a warm mailbox keeps its capacity (no allocation per item).
#include "common/mailbox.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace axon {
namespace {

TEST(Mailbox, TakesEverythingInOrderAndThenIsEmpty) {
  Mailbox<int> box;
  std::vector<int> got;
  box.TakeAll(got);
  EXPECT_TRUE(got.empty());
  EXPECT_FALSE(box.maybe_full());
  for (int i = 0; i < 5; ++i) box.Put(i);
  EXPECT_TRUE(box.maybe_full());
  box.TakeAll(got);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_FALSE(box.maybe_full());
  box.TakeAll(got);
  EXPECT_TRUE(got.empty());
}

TEST(Mailbox, WarmListsAreReusedNotReallocated) {
  Mailbox<int> box;
  std::vector<int> got;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 100; ++i) box.Put(i);
    box.TakeAll(got);
  }
  // Two lists swap back and forth: each keeps the capacity it grew to.
  const int* const a = got.data();
  for (int i = 0; i < 100; ++i) box.Put(i);
  box.TakeAll(got);
  const int* const b = got.data();
  for (int i = 0; i < 100; ++i) box.Put(i);
  box.TakeAll(got);
  EXPECT_NE(a, b);
  EXPECT_EQ(got.data(), a);
}

TEST(Mailbox, ManyPuttersNoneLostEachInItsOrder) {
  constexpr int kThreads = 4, kEach = 20000;
  Mailbox<std::pair<int, int>> box;
  std::vector<std::thread> putters;
  for (int t = 0; t < kThreads; ++t) {
    putters.emplace_back([&box, t] {
      for (int i = 0; i < kEach; ++i) box.Put({t, i});
    });
  }
  std::vector<int> next(kThreads, 0);
  int total = 0;
  std::vector<std::pair<int, int>> got;
  while (total < kThreads * kEach) {
    box.TakeAll(got);
    for (const auto& [t, i] : got) {
      ASSERT_EQ(i, next[static_cast<size_t>(t)]) << "putter " << t << " out of order";
      ++next[static_cast<size_t>(t)];
      ++total;
    }
  }
  for (auto& p : putters) p.join();
  box.TakeAll(got);
  EXPECT_TRUE(got.empty());
}

}  // namespace
}  // namespace axon
