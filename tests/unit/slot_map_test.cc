// SlotMap: values found by key stay in place until erased or taken, a freed
// slot takes the next value, and erasing destroys the value then.
#include "common/slot_map.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace axon {
namespace {

TEST(SlotMap, FindsTakesAndErasesByKey) {
  SlotMap<uint64_t, std::string> map;
  EXPECT_TRUE(map.empty());
  map.Emplace(7, "seven");
  map.Emplace(9, "nine");
  EXPECT_EQ(map.size(), 2u);
  ASSERT_NE(map.Find(7), nullptr);
  EXPECT_EQ(*map.Find(7), "seven");
  EXPECT_EQ(map.Find(8), nullptr);
  EXPECT_NE(map.Find(9), nullptr);
  EXPECT_EQ(map.Take(9), "nine");
  EXPECT_EQ(map.Take(9), std::nullopt);
  EXPECT_EQ(map.Find(9), nullptr);
  EXPECT_TRUE(map.Erase(7));
  EXPECT_FALSE(map.Erase(7));
  EXPECT_TRUE(map.empty());
}

TEST(SlotMap, ValuesStayInPlaceWhileOthersComeAndGo) {
  SlotMap<uint64_t, std::string> map;
  std::string* first = &map.Emplace(0, "first");
  // Enough adds and removes to make a flat_hash_map rehash many times.
  for (uint64_t i = 1; i < 5000; ++i) {
    map.Emplace(i, std::to_string(i));
    if (i % 3 != 0) {
      EXPECT_TRUE(map.Erase(i));
    }
  }
  EXPECT_EQ(map.Find(0), first);
  EXPECT_EQ(*first, "first");
  EXPECT_EQ(map.size(), 1u + 4999 / 3);
}

TEST(SlotMap, AFreedSlotTakesTheNextValue) {
  SlotMap<uint64_t, int> map;
  for (uint64_t round = 0; round < 100; ++round) {
    for (uint64_t i = 0; i < 8; ++i) map.Emplace(round * 8 + i, static_cast<int>(i));
    for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(map.Erase(round * 8 + i));
  }
  // Never more than eight held at once: eight slots, reused.
  EXPECT_EQ(map.slots(), 8u);
}

TEST(SlotMap, ErasingOrTakingLetsGoOfTheValue) {
  SlotMap<int, std::shared_ptr<int>> map;
  auto held = std::make_shared<int>(1);
  map.Emplace(1, std::shared_ptr<int>(held));
  map.Emplace(2, std::shared_ptr<int>(held));
  EXPECT_EQ(held.use_count(), 3);
  EXPECT_TRUE(map.Erase(1));
  EXPECT_EQ(held.use_count(), 2);
  { EXPECT_EQ(*map.Take(2), held); }
  EXPECT_EQ(held.use_count(), 1);
  map.Emplace(3, std::shared_ptr<int>(held));
  int seen = 0;
  map.ForEach([&](int key, std::shared_ptr<int>& value) {
    EXPECT_EQ(key, 3);
    EXPECT_EQ(value, held);
    ++seen;
  });
  EXPECT_EQ(seen, 1);
  map.Clear();
  EXPECT_EQ(held.use_count(), 1);
  EXPECT_EQ(map.slots(), 0u);
}

}  // namespace
}  // namespace axon
