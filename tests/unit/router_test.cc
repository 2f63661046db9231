// Router: a send to this node's endpoint goes to the matcher, one to another
// node's to the remote path, one to an endpoint another engine shard serves
// to that shard, and one it cannot route fails with the reason.
#include "daemon/engine/router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/support/fake_match_sink.h"

namespace axon::daemon {
namespace {

using testing::BufferRegion;
using ::testing::ElementsAre;
using testing::FakeSink;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    sink_.matcher = &matcher_;
    sink_.owners = {{"a", 1}, {"b", 2}};
  }
  Pending SendOp(uint64_t op_id) {
    return Pending{.session = 1,
                   .op_id = op_id,
                   .region = memory_,
                   .offset = 16,
                   .length = 8,
                   .tag = 7,
                   .from = "a"};
  }
  void Remote() {
    router_.SetRemote([this](Outgoing send) { remote_.push_back(std::move(send)); });
  }

  std::shared_ptr<Region> memory_ = std::make_shared<BufferRegion>(64);
  FakeSink sink_;
  Matcher matcher_{"here", sink_};
  Router router_{"here", matcher_, sink_};
  std::vector<Outgoing> remote_;
};

TEST_F(RouterTest, ThisNodesEndpointsGoToTheMatcher) {
  Remote();
  router_.Send(SendOp(1), "b");
  router_.Send(SendOp(2), "here/b");
  EXPECT_EQ(matcher_.sends_waiting("b"), 2u);
  EXPECT_THAT(remote_, IsEmpty());
}

TEST_F(RouterTest, AnotherNodesEndpointGoesToTheRemotePathWithEverything) {
  Remote();
  router_.Send(SendOp(1), "there/x");
  ASSERT_EQ(remote_.size(), 1u);
  const Outgoing& o = remote_[0];
  EXPECT_EQ(o.session, 1u);
  EXPECT_EQ(o.op_id, 1u);
  EXPECT_EQ(o.node, "there");
  EXPECT_EQ(o.from, "a");
  EXPECT_EQ(o.to, "x");
  EXPECT_EQ(o.tag, 7u);
  EXPECT_EQ(o.region, memory_);
  EXPECT_EQ(o.offset, 16u);
  EXPECT_EQ(o.length, 8u);
  EXPECT_EQ(matcher_.sends_waiting("x"), 0u);
}

TEST_F(RouterTest, AnEndpointOfAnotherShardGoesThereWithItsOwner) {
  struct Hop {
    uint64_t op_id;
    std::string to;
    uint64_t owner;
  };
  std::vector<Hop> hops;
  // Session 2 (endpoint "b") is another shard's; session 1 ("a") this one's.
  router_.SetElsewhere([](uint64_t session) { return session == 1; },
                       [&](Pending&& send, std::string to, uint64_t owner) {
                         hops.push_back({send.op_id, std::move(to), owner});
                       });
  router_.Send(SendOp(1), "b");
  router_.Send(SendOp(2), "here/b");
  router_.Send(SendOp(3), "a");
  router_.Send(SendOp(4), "nobody");  // unbound: the matcher says so, here
  ASSERT_EQ(hops.size(), 2u);
  EXPECT_EQ(hops[0].op_id, 1u);
  EXPECT_EQ(hops[0].to, "b");
  EXPECT_EQ(hops[0].owner, 2u);
  EXPECT_EQ(hops[1].op_id, 2u);
  EXPECT_EQ(hops[1].to, "b");
  EXPECT_EQ(matcher_.sends_waiting("b"), 0u);
  EXPECT_EQ(matcher_.sends_waiting("a"), 1u);
  ASSERT_EQ(sink_.failures.size(), 1u);
  EXPECT_EQ(sink_.failures[0].op_id, 4u);
  EXPECT_EQ(sink_.failures[0].code, absl::StatusCode::kNotFound);
}

TEST_F(RouterTest, WithoutAPeerPlaneAnotherNodeIsUnreachable) {
  router_.Send(SendOp(1), "there/x");
  ASSERT_EQ(sink_.failures.size(), 1u);
  EXPECT_EQ(sink_.failures[0].code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(sink_.failures[0].message, HasSubstr("no peer plane"));
}

TEST_F(RouterTest, ABadEndpointNameOnAnotherNodeIsRefusedHere) {
  Remote();
  router_.Send(SendOp(1), "there/");
  router_.Send(SendOp(2), "there/" + std::string(64, 'x'));
  EXPECT_THAT(remote_, IsEmpty());
  EXPECT_THAT(sink_.FailedOps(), ElementsAre(1u, 2u));
  EXPECT_EQ(sink_.failures[0].code, absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace axon::daemon
