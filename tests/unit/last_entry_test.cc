#include "common/last_entry.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace axon {
namespace {

using Map = std::map<std::string, int>;

TEST(LastEntry, FindsWhatTheMapHoldsAndNothingElse) {
  Map map{{"a", 1}, {"b", 2}};
  LastEntry<Map> last;
  EXPECT_EQ(last.Find(map, "c"), nullptr);
  ASSERT_NE(last.Find(map, "a"), nullptr);
  EXPECT_EQ(*last.Find(map, "a"), 1);  // from the cache
  EXPECT_EQ(last.Find(map, "a"), &map["a"]);
  EXPECT_EQ(*last.Find(map, "b"), 2);  // another key replaces it
  EXPECT_EQ(last.Find(map, "c"), nullptr);
  EXPECT_EQ(map.size(), 2u);  // Find adds nothing
}

TEST(LastEntry, FindOrAddAddsOnceAndSaysSo) {
  Map map;
  LastEntry<Map> last;
  bool added = false;
  last.FindOrAdd(map, "x", &added) = 7;
  EXPECT_TRUE(added);
  EXPECT_EQ(last.FindOrAdd(map, "x", &added), 7);
  EXPECT_FALSE(added);
  last.FindOrAdd(map, "y", &added);
  EXPECT_TRUE(added);
  EXPECT_EQ(last.FindOrAdd(map, "x", &added), 7);  // found in the map, not the cache
  EXPECT_FALSE(added);
  EXPECT_EQ(map.size(), 2u);
}

TEST(LastEntry, ForgetBeforeEraseLetsAKeyComeBackFresh) {
  Map map;
  LastEntry<Map> last;
  last.FindOrAdd(map, "n") = 5;
  last.Forget();
  map.erase("n");
  EXPECT_EQ(last.Find(map, "n"), nullptr);  // not the erased entry
  bool added = false;
  EXPECT_EQ(last.FindOrAdd(map, "n", &added), 0);
  EXPECT_TRUE(added);
}

}  // namespace
}  // namespace axon
