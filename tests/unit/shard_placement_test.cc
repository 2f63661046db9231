// ShardPlacement: a session's id picks its engine shard (id % shards), so
// sessions naming one placement get ids on one shard; a new placement, and
// a session without one, goes to the least-loaded shard; and counts go when
// sessions close.
#include "daemon/session/shard_placement.h"

#include <gtest/gtest.h>

#include <string>

namespace axon::daemon {
namespace {

// A lone session is served by shard 0, which holds the connections to other
// nodes; the next ones fill the other shards, then go round.
TEST(ShardPlacement, WithoutAPlacementTheFewestSessionsShardShardZeroFirst) {
  ShardPlacement p(4);
  uint64_t next = 1;
  std::vector<uint64_t> shards;
  for (int i = 0; i < 9; ++i) {
    const uint64_t id = p.Place(next, "");
    EXPECT_GE(id, next);
    next = id + 1;
    shards.push_back(id % 4);
  }
  EXPECT_EQ(shards, (std::vector<uint64_t>{0, 1, 2, 3, 0, 1, 2, 3, 0}));
  EXPECT_EQ(p.sessions(), (std::vector<uint64_t>{3, 2, 2, 2}));
}

// A closed session's shard takes the next one.
TEST(ShardPlacement, WithoutAPlacementAClosedSessionsShardIsRefilled) {
  ShardPlacement p(3);
  const uint64_t a = p.Place(1, ""), b = p.Place(a + 1, ""), c = p.Place(b + 1, "");
  p.Remove(b, "");
  EXPECT_EQ(p.Place(c + 1, "") % 3, b % 3);
}

TEST(ShardPlacement, OnePlacementSharesAShard) {
  ShardPlacement p(4);
  uint64_t next = 1;
  auto place = [&](const std::string& name) {
    const uint64_t id = p.Place(next, name);
    EXPECT_GE(id, next);
    next = id + 1;
    return id;
  };
  const uint64_t a1 = place("a"), b1 = place("b"), a2 = place("a"), b2 = place("b");
  EXPECT_EQ(a1 % 4, a2 % 4);
  EXPECT_EQ(b1 % 4, b2 % 4);
  EXPECT_NE(a1 % 4, b1 % 4) << "a new placement goes to a shard with fewer sessions";
  EXPECT_EQ(p.ShardOf("a"), static_cast<int>(a1 % 4));
  EXPECT_EQ(p.ShardOf("c"), -1);
}

TEST(ShardPlacement, FourPairsOnFourShardsTakeOneShardEach) {
  ShardPlacement p(4);
  uint64_t next = 1;
  std::vector<int> seen(4, 0);
  for (int pair = 0; pair < 4; ++pair) {
    const std::string name = "pair-" + std::to_string(pair);
    const uint64_t s = p.Place(next, name);
    const uint64_t r = p.Place(s + 1, name);
    next = r + 1;
    ASSERT_EQ(s % 4, r % 4);
    ++seen[s % 4];
  }
  EXPECT_EQ(seen, (std::vector<int>{1, 1, 1, 1}));
}

TEST(ShardPlacement, ClosingForgetsAPlacementWithItsLastSession) {
  ShardPlacement p(3);
  const uint64_t a = p.Place(1, "a");
  const uint64_t b = p.Place(a + 1, "a");
  p.Remove(a, "a");
  EXPECT_EQ(p.ShardOf("a"), static_cast<int>(b % 3));
  p.Remove(b, "a");
  EXPECT_EQ(p.ShardOf("a"), -1);
  EXPECT_EQ(p.sessions(), (std::vector<uint64_t>{0, 0, 0}));
}

TEST(ShardPlacement, OneShardTakesIdsInOrder) {
  ShardPlacement p(1);
  EXPECT_EQ(p.Place(5, "a"), 5u);
  EXPECT_EQ(p.Place(6, "b"), 6u);
  EXPECT_EQ(p.ShardOf("a"), -1);  // nothing to place
  p.Remove(5, "a");
  EXPECT_EQ(p.sessions(), (std::vector<uint64_t>{1}));
}

}  // namespace
}  // namespace axon::daemon
