#include "common/match_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <list>
#include <memory>
#include <random>

namespace axon {
namespace {

struct Entry {
  uint64_t tag = 0;
  int id = 0;
  int source = 0;              // 0: accepts any
  std::shared_ptr<int> holds;  // shows that a taken entry lets go
};

auto AnySource(int source) {
  return [source](const Entry& e) { return e.source == 0 || e.source == source; };
}

TEST(MatchQueue, TakesTheFirstOfATagInPostingOrder) {
  MatchQueue<Entry> q;
  q.push_back({.tag = 1, .id = 1});
  q.push_back({.tag = 2, .id = 2});
  q.push_back({.tag = 1, .id = 3});
  EXPECT_EQ(q.size(), 3u);
  EXPECT_FALSE(q.TakeFirst(9, AnySource(0)).has_value());
  EXPECT_EQ(q.TakeFirst(1, AnySource(0))->id, 1);
  EXPECT_EQ(q.TakeFirst(1, AnySource(0))->id, 3);
  EXPECT_FALSE(q.TakeFirst(1, AnySource(0)).has_value());
  EXPECT_EQ(q.TakeFirst(2, AnySource(0))->id, 2);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.storage(), 0u);
}

TEST(MatchQueue, ThePredicateSkipsEntriesOfTheSameTag) {
  MatchQueue<Entry> q;
  q.push_back({.tag = 5, .id = 1, .source = 7});
  q.push_back({.tag = 5, .id = 2, .source = 8});
  q.push_back({.tag = 5, .id = 3});
  EXPECT_EQ(q.TakeFirst(5, AnySource(8))->id, 2);  // from the middle of its chain
  EXPECT_EQ(q.TakeFirst(5, AnySource(9))->id, 3);  // the tail; 1 wants source 7
  q.push_back({.tag = 5, .id = 4});                // links after 1, the chain's last now
  EXPECT_EQ(q.TakeFirst(5, AnySource(9))->id, 4);
  EXPECT_EQ(q.TakeFirst(5, AnySource(7))->id, 1);
  EXPECT_TRUE(q.empty());
}

TEST(MatchQueue, ATakenEntryLetsGoOfWhatItHeld) {
  MatchQueue<Entry> q;
  auto held = std::make_shared<int>(1);
  q.push_back({.tag = 1, .id = 1});  // stays: the taken one is a hole behind it
  q.push_back({.tag = 2, .id = 2, .holds = held});
  auto taken = q.TakeFirst(2, AnySource(0));
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(held.use_count(), 2);  // `held` and `taken`: not the queue
  taken.reset();
  EXPECT_EQ(held.use_count(), 1);
  q.push_back({.tag = 3, .id = 3, .holds = held});
  EXPECT_EQ(q.remove_if([](Entry& e) { return e.tag == 3; }), 1u);
  EXPECT_EQ(held.use_count(), 1);
}

TEST(MatchQueue, RemoveIfKeepsTheOthersInOrder) {
  MatchQueue<Entry> q;
  for (int i = 0; i < 10; ++i) q.push_back({.tag = static_cast<uint64_t>(i % 3), .id = i});
  EXPECT_EQ(q.remove_if([](Entry& e) { return e.id % 2 == 0; }), 5u);
  std::vector<int> left;
  q.for_each([&](const Entry& e) { left.push_back(e.id); });
  EXPECT_EQ(left, (std::vector<int>{1, 3, 5, 7, 9}));
  EXPECT_TRUE(q.any_of([](const Entry& e) { return e.id == 7; }));
  EXPECT_FALSE(q.any_of([](const Entry& e) { return e.id == 8; }));
  // The chains were relinked around the removed entries.
  EXPECT_EQ(q.TakeFirst(0, AnySource(0))->id, 3);
  EXPECT_EQ(q.TakeFirst(0, AnySource(0))->id, 9);
  EXPECT_EQ(q.TakeFirst(1, AnySource(0))->id, 1);
  EXPECT_EQ(q.TakeFirstIf([](const Entry& e) { return e.id > 5; })->id, 7);
  EXPECT_EQ(q.TakeFirst(2, AnySource(0))->id, 5);
  EXPECT_TRUE(q.empty());
}

TEST(MatchQueue, StorageStaysBoundedBehindALongLivedEntry) {
  // A receive that waits for a long time at the front must not make the
  // queue keep every hole behind it.
  MatchQueue<Entry> q;
  q.push_back({.tag = 1u << 30, .id = -1});
  for (int i = 0; i < 100000; ++i) {
    q.push_back({.tag = static_cast<uint64_t>(i), .id = i});
    if (i >= 200) {
      ASSERT_EQ(q.TakeFirst(static_cast<uint64_t>(i - 200), AnySource(0))->id, i - 200);
    }
    ASSERT_LE(q.storage(), 4 * q.size() + 17);
  }
  EXPECT_EQ(q.size(), 201u);
  EXPECT_EQ(q.TakeFirst(1u << 30, AnySource(0))->id, -1);
}

// Every operation against a list scanned the slow, obvious way.
TEST(MatchQueue, AgreesWithAListUnderRandomOperations) {
  std::mt19937 rng(12345);
  MatchQueue<Entry> q;
  std::list<Entry> model;
  int next_id = 0;
  for (int step = 0; step < 200000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    const auto tag = static_cast<uint64_t>(rng() % 16);
    const int source = static_cast<int>(rng() % 4);
    if (op < 5) {
      Entry e{.tag = tag, .id = next_id++, .source = source};
      q.push_back(Entry(e));
      model.push_back(e);
    } else if (op < 8) {
      auto pred = AnySource(source == 0 ? 1 : source);
      auto got = q.TakeFirst(tag, pred);
      auto want = std::find_if(model.begin(), model.end(),
                               [&](const Entry& e) { return e.tag == tag && pred(e); });
      ASSERT_EQ(got.has_value(), want != model.end()) << "step " << step;
      if (got) {
        ASSERT_EQ(got->id, want->id) << "step " << step;
        model.erase(want);
      }
    } else if (op < 9) {
      const int mod = 2 + static_cast<int>(rng() % 7);
      auto got = q.TakeFirstIf([&](const Entry& e) { return e.id % mod == 0; });
      auto want =
          std::find_if(model.begin(), model.end(), [&](const Entry& e) { return e.id % mod == 0; });
      ASSERT_EQ(got.has_value(), want != model.end());
      if (got) {
        ASSERT_EQ(got->id, want->id);
        model.erase(want);
      }
    } else {
      const int mod = 5 + static_cast<int>(rng() % 20);
      const size_t removed = q.remove_if([&](Entry& e) { return e.id % mod == 1; });
      const size_t before = model.size();
      model.remove_if([&](const Entry& e) { return e.id % mod == 1; });
      ASSERT_EQ(removed, before - model.size());
    }
    ASSERT_EQ(q.size(), model.size());
    ASSERT_LE(q.storage(), 4 * q.size() + 17);
  }
  std::vector<int> got, want;
  q.for_each([&](const Entry& e) { got.push_back(e.id); });
  for (const Entry& e : model) want.push_back(e.id);
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace axon
