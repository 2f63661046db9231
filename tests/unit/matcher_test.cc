// Matcher against a fake sink that records its decisions: order per pair,
// tags and named senders, the receive area and its order, cancel and a node
// going down at every state of a message, sessions closing.
#include "daemon/engine/matcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/fake_match_sink.h"

namespace axon::daemon {
namespace {

using testing::BufferRegion;
using ::testing::ElementsAre;
using testing::Failure;
using testing::FakeSink;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kSender = 1, kReceiver = 2;

class MatcherTest : public ::testing::Test {
 protected:
  MatcherTest() {
    sink_.matcher = &matcher_;
    sink_.owners = {{"a", kSender}, {"b", kReceiver}};
  }

  Pending SendOp(uint64_t op_id, uint64_t tag, uint64_t length = 8, std::string from = "a") {
    return Pending{.session = kSender,
                   .op_id = op_id,
                   .region = memory_,
                   .length = length,
                   .tag = tag,
                   .from = std::move(from)};
  }
  Pending ReceiveOp(uint64_t op_id, uint64_t tag, uint64_t length = 64) {
    return Pending{.session = kReceiver,
                   .op_id = op_id,
                   .region = memory_,
                   .length = length,
                   .tag = tag,
                   .from = "b"};
  }
  std::shared_ptr<Incoming> FromNode(std::string node, uint64_t id, uint64_t tag,
                                     std::string from = "r", uint64_t length = 8) {
    auto m = std::make_shared<Incoming>();
    m->node = std::move(node);
    m->message_id = id;
    m->tag = tag;
    m->from = std::move(from);
    m->to = "b";
    m->total = length;
    return m;
  }

  std::shared_ptr<Region> memory_ = std::make_shared<BufferRegion>(4096);
  FakeSink sink_;
  Matcher matcher_{"here", sink_};
};

TEST_F(MatcherTest, SendsMeetReceivesInTheOrderTheyCame) {
  for (uint64_t op = 1; op <= 3; ++op) matcher_.Send(SendOp(op, 7), "b");
  EXPECT_EQ(matcher_.sends_waiting("b"), 3u);
  for (uint64_t op = 11; op <= 13; ++op) matcher_.Receive(ReceiveOp(op, 7));
  EXPECT_THAT(sink_.deliveries,
              ElementsAre(FakeSink::Delivery{"op 1", 11}, FakeSink::Delivery{"op 2", 12},
                          FakeSink::Delivery{"op 3", 13}));
  EXPECT_EQ(matcher_.sends_waiting("b"), 0u);
}

TEST_F(MatcherTest, ReceivesPostedFirstAreTakenInOrder) {
  matcher_.Receive(ReceiveOp(11, 7));
  matcher_.Receive(ReceiveOp(12, 7));
  matcher_.Send(SendOp(1, 7), "b");
  matcher_.Arrive(FromNode("n", 5, 7));
  EXPECT_THAT(sink_.deliveries,
              ElementsAre(FakeSink::Delivery{"op 1", 11}, FakeSink::Delivery{"n#5", 12}));
}

TEST_F(MatcherTest, TagsMatchOnlyTheirOwn) {
  matcher_.Receive(ReceiveOp(11, 1));
  matcher_.Send(SendOp(1, 2), "b");
  EXPECT_THAT(sink_.deliveries, IsEmpty());
  matcher_.Send(SendOp(2, 1), "b");
  matcher_.Receive(ReceiveOp(12, 2));
  EXPECT_THAT(sink_.deliveries,
              ElementsAre(FakeSink::Delivery{"op 2", 11}, FakeSink::Delivery{"op 1", 12}));
}

TEST_F(MatcherTest, AReceiveThatNamesItsSenderTakesOnlyItsMessages) {
  sink_.owners["c"] = 3;
  matcher_.Send(SendOp(1, 7, 8, "c"), "b");   // from here/c
  matcher_.Arrive(FromNode("n", 5, 7, "a"));  // from n/a
  Pending receive = ReceiveOp(11, 7);
  receive.source_node = "here";
  receive.source_endpoint = "a";
  matcher_.Receive(std::move(receive));
  EXPECT_THAT(sink_.deliveries, IsEmpty());  // neither is here/a
  matcher_.Send(SendOp(2, 7), "b");
  EXPECT_THAT(sink_.deliveries, ElementsAre(FakeSink::Delivery{"op 2", 11}));
  receive = ReceiveOp(12, 7);
  receive.source_node = "n";
  receive.source_endpoint = "a";
  matcher_.Receive(std::move(receive));
  EXPECT_THAT(sink_.deliveries.back(), (FakeSink::Delivery{"n#5", 12}));
}

TEST_F(MatcherTest, AMessageLargerThanItsReceiveFailsBothSides) {
  matcher_.Receive(ReceiveOp(11, 7, 4));
  matcher_.Send(SendOp(1, 7, 8), "b");
  EXPECT_THAT(sink_.deliveries, IsEmpty());
  ASSERT_EQ(sink_.failures.size(), 2u);
  EXPECT_EQ(sink_.failures[0].op_id, 1u);
  EXPECT_EQ(sink_.failures[1].op_id, 11u);
  EXPECT_EQ(sink_.failures[1].code, absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(sink_.failures[1].message, HasSubstr("8 bytes for a buffer of 4"));

  matcher_.Receive(ReceiveOp(12, 7, 4));
  matcher_.Arrive(FromNode("n", 5, 7));
  ASSERT_EQ(sink_.refusals.size(), 1u);
  EXPECT_EQ(sink_.refusals[0].second, absl::StatusCode::kResourceExhausted);
}

TEST_F(MatcherTest, NobodyAtTheEndpointIsNotFound) {
  matcher_.Send(SendOp(1, 7), "nobody");
  ASSERT_EQ(sink_.failures.size(), 1u);
  EXPECT_EQ(sink_.failures[0].code, absl::StatusCode::kNotFound);
  EXPECT_THAT(sink_.failures[0].message, HasSubstr("no endpoint 'nobody' on node here"));
  auto m = FromNode("n", 5, 7);
  m->to = "nobody";
  matcher_.Arrive(m);
  ASSERT_EQ(sink_.refusals.size(), 1u);
  EXPECT_EQ(sink_.refusals[0].second, absl::StatusCode::kNotFound);
}

TEST_F(MatcherTest, APostedOnlyMessageWithoutAReceiveFailsAtOnce) {
  const uint64_t tag = wire::kDirectedTagBit | wire::kPostedOnlyTagBit | 9;
  matcher_.Send(SendOp(1, tag), "b");
  matcher_.Arrive(FromNode("n", 5, tag));
  ASSERT_EQ(sink_.failures.size(), 1u);
  EXPECT_EQ(sink_.failures[0].code, absl::StatusCode::kNotFound);
  ASSERT_EQ(sink_.refusals.size(), 1u);
  EXPECT_EQ(matcher_.sends_waiting("b"), 0u);
}

TEST_F(MatcherTest, CancelTakesAWaitingReceiveOrSendAndNothingElse) {
  const absl::Status cancelled = absl::CancelledError("cancelled");
  matcher_.Receive(ReceiveOp(11, 1));  // waiting receive
  matcher_.Send(SendOp(1, 2), "b");    // waiting send
  matcher_.Send(SendOp(2, 1), "b");    // delivered to 11 ...
  matcher_.Receive(ReceiveOp(12, 3));  // another waiting receive
  EXPECT_TRUE(matcher_.Abort(kSender, 1, cancelled));
  EXPECT_TRUE(matcher_.Abort(kReceiver, 12, cancelled));
  EXPECT_FALSE(matcher_.Abort(kSender, 2, cancelled));     // delivered
  EXPECT_FALSE(matcher_.Abort(kReceiver, 11, cancelled));  // delivered
  EXPECT_FALSE(matcher_.Abort(kSender, 99, cancelled));    // never was
  EXPECT_THAT(sink_.FailedOps(), ElementsAre(1u, 12u));
  EXPECT_EQ(sink_.failures[0].code, absl::StatusCode::kCancelled);
  // A cancelled send does not come back: the next receive with its tag waits.
  matcher_.Receive(ReceiveOp(13, 2));
  EXPECT_EQ(sink_.deliveries.size(), 1u);
}

TEST_F(MatcherTest, CancelDoesNotTakeAMessageWhileItLandsInTheArea) {
  sink_.land_at_once = false;
  ASSERT_TRUE(matcher_.SetArea(kReceiver, std::make_shared<BufferRegion>(64), 16).ok());
  matcher_.Send(SendOp(1, 7), "b");
  ASSERT_EQ(sink_.landings.size(), 1u);
  EXPECT_FALSE(matcher_.Abort(kSender, 1, absl::CancelledError("late")));
  matcher_.Landed(kReceiver, 0, true);
  EXPECT_EQ(sink_.announced.size(), 1u);
  EXPECT_THAT(sink_.failures, IsEmpty());
}

TEST_F(MatcherTest, AWithdrawnMessageIsGone) {
  matcher_.Arrive(FromNode("n", 5, 7));
  matcher_.Arrive(FromNode("n", 6, 7));
  EXPECT_TRUE(matcher_.Withdraw("n", 5));
  EXPECT_FALSE(matcher_.Withdraw("n", 5));
  EXPECT_FALSE(matcher_.Withdraw("m", 6));  // another node's id
  matcher_.Receive(ReceiveOp(11, 7));
  EXPECT_THAT(sink_.deliveries, ElementsAre(FakeSink::Delivery{"n#6", 11}));
}

TEST_F(MatcherTest, ANodeGoingDownTakesItsMessagesAndFailsReceivesForIt) {
  matcher_.Arrive(FromNode("n", 5, 7));
  matcher_.Arrive(FromNode("m", 6, 8));
  Pending from_n = ReceiveOp(11, 9);
  from_n.source_node = "n";
  from_n.source_endpoint = "r";
  matcher_.Receive(std::move(from_n));
  Pending from_m = ReceiveOp(12, 9);
  from_m.source_node = "m";
  from_m.source_endpoint = "r";
  matcher_.Receive(std::move(from_m));
  matcher_.Receive(ReceiveOp(13, 9));  // from anyone: stays

  matcher_.NodeDown("n");
  ASSERT_EQ(sink_.failures.size(), 1u);
  EXPECT_EQ(sink_.failures[0].op_id, 11u);
  EXPECT_EQ(sink_.failures[0].code, absl::StatusCode::kUnavailable);
  EXPECT_THAT(sink_.failures[0].message, HasSubstr("node n is down"));
  EXPECT_THAT(sink_.refusals, IsEmpty());  // nobody to tell
  matcher_.Receive(ReceiveOp(14, 7));
  matcher_.Receive(ReceiveOp(15, 8));
  EXPECT_THAT(sink_.deliveries, ElementsAre(FakeSink::Delivery{"m#6", 15}));
  EXPECT_EQ(matcher_.receives_waiting("b"), 3u);  // 12, 13, 14
}

TEST_F(MatcherTest, AClosedSessionTakesItsOwnAndFailsWhatWaitsOnItsEndpoints) {
  sink_.owners["c"] = 3;
  matcher_.Send(SendOp(1, 7), "b");      // from a to b: fails when b goes
  matcher_.Arrive(FromNode("n", 5, 7));  // from n to b: refused when b goes
  Pending from_b{.session = 3,
                 .op_id = 21,
                 .region = memory_,
                 .length = 64,
                 .tag = 7,
                 .from = "c",
                 .source_node = "here",
                 .source_endpoint = "b"};
  matcher_.Receive(std::move(from_b));  // c waits for b: fails when b goes
  matcher_.Receive(ReceiveOp(11, 8));   // b's own receive: goes unreported

  sink_.owners.erase("b");
  matcher_.SessionClosed(kReceiver);
  EXPECT_THAT(sink_.FailedOps(), ElementsAre(21u, 1u));
  for (const Failure& f : sink_.failures) EXPECT_EQ(f.code, absl::StatusCode::kUnavailable);
  ASSERT_EQ(sink_.refusals.size(), 1u);
  EXPECT_EQ(sink_.refusals[0].first, 5u);
  EXPECT_EQ(matcher_.receives_waiting("b"), 0u);
  EXPECT_EQ(matcher_.sends_waiting("b"), 0u);
}

TEST_F(MatcherTest, TheAreaTakesMessagesWithoutAReceiveAndAnnouncesThemInOrder) {
  sink_.land_at_once = false;
  auto slots = matcher_.SetArea(kReceiver, std::make_shared<BufferRegion>(64), 16);
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(*slots, 4u);
  matcher_.Send(SendOp(1, 7), "b");
  matcher_.Arrive(FromNode("n", 5, 7));
  matcher_.Send(SendOp(2, 7), "b");
  ASSERT_EQ(sink_.landings.size(), 3u);
  EXPECT_EQ(matcher_.free_slots(kReceiver), 1u);
  // They finish landing out of order; they are announced in order.
  matcher_.Landed(kReceiver, 2, true);
  matcher_.Landed(kReceiver, 1, true);
  EXPECT_THAT(sink_.announced, IsEmpty());
  matcher_.Landed(kReceiver, 0, true);
  ASSERT_EQ(sink_.announced.size(), 3u);
  EXPECT_EQ(sink_.announced[0].slot, 0u);  // slot 0 first
  EXPECT_EQ(sink_.announced[0].names, "b <- here/a");
  EXPECT_EQ(sink_.announced[1].names, "b <- n/r");
  EXPECT_EQ(sink_.announced[2].slot, 2u);
}

TEST_F(MatcherTest, AFullAreaHoldsMessagesBackUntilASlotIsReleased) {
  ASSERT_TRUE(matcher_.SetArea(kReceiver, std::make_shared<BufferRegion>(32), 16).ok());
  for (uint64_t op = 1; op <= 4; ++op) matcher_.Send(SendOp(op, 7), "b");
  EXPECT_EQ(sink_.announced.size(), 2u);
  EXPECT_EQ(matcher_.sends_waiting("b"), 2u);
  matcher_.Release(kReceiver, sink_.announced[0].slot);
  EXPECT_EQ(sink_.announced.size(), 3u);
  EXPECT_EQ(sink_.landings.back().send, "op 3");
  matcher_.Release(kReceiver, 99);  // not in use: ignored
  EXPECT_EQ(sink_.announced.size(), 3u);
  // Released twice: the second is ignored, and the slot is free once.
  const uint64_t slot = sink_.announced[1].slot;
  matcher_.Release(kReceiver, slot);
  EXPECT_EQ(sink_.landings.back().send, "op 4");
  EXPECT_EQ(matcher_.free_slots(kReceiver), 0u);
  matcher_.Release(kReceiver, sink_.announced[2].slot);
  EXPECT_EQ(matcher_.free_slots(kReceiver), 1u);
  matcher_.Release(kReceiver, sink_.announced[2].slot);
  EXPECT_EQ(matcher_.free_slots(kReceiver), 1u);
}

TEST_F(MatcherTest, AMessageDoesNotOvertakeAnEarlierOneFromItsSource) {
  ASSERT_TRUE(matcher_.SetArea(kReceiver, std::make_shared<BufferRegion>(64), 16).ok());
  matcher_.Send(SendOp(1, 7, 32), "b");  // too large for a slot: waits
  matcher_.Send(SendOp(2, 7, 8), "b");   // fits, but must not pass op 1
  matcher_.Arrive(FromNode("n", 5, 7));  // another source: lands
  EXPECT_EQ(matcher_.sends_waiting("b"), 2u);
  ASSERT_EQ(sink_.landings.size(), 1u);
  EXPECT_EQ(sink_.landings[0].send, "n#5");
  // Once op 1 is taken, op 2 lands in a free slot without waiting for a
  // release (the area has three).
  matcher_.Receive(ReceiveOp(11, 7));
  EXPECT_THAT(sink_.deliveries, ElementsAre(FakeSink::Delivery{"op 1", 11}));
  ASSERT_EQ(sink_.landings.size(), 2u);
  EXPECT_EQ(sink_.landings.back().send, "op 2");
  EXPECT_EQ(matcher_.sends_waiting("b"), 0u);
}

TEST_F(MatcherTest, DirectedMessagesNeverLandInTheArea) {
  ASSERT_TRUE(matcher_.SetArea(kReceiver, std::make_shared<BufferRegion>(64), 16).ok());
  matcher_.Send(SendOp(1, wire::kDirectedTagBit | 3), "b");
  matcher_.Send(SendOp(2, 7), "b");  // not held back by the directed one
  EXPECT_EQ(matcher_.sends_waiting("b"), 1u);
  ASSERT_EQ(sink_.landings.size(), 1u);
  EXPECT_EQ(sink_.landings[0].send, "op 2");
}

TEST_F(MatcherTest, AFailedLandingFreesItsSlotAndIsNotAnnounced) {
  sink_.land_at_once = false;
  ASSERT_TRUE(matcher_.SetArea(kReceiver, std::make_shared<BufferRegion>(16), 16).ok());
  matcher_.Arrive(FromNode("n", 5, 7));
  EXPECT_EQ(matcher_.free_slots(kReceiver), 0u);
  matcher_.Landed(kReceiver, 0, false);
  EXPECT_THAT(sink_.announced, IsEmpty());
  EXPECT_EQ(matcher_.free_slots(kReceiver), 1u);
}

TEST_F(MatcherTest, WaitingSendsTakeANewAreaWhenAsked) {
  matcher_.Send(SendOp(1, 7), "b");
  matcher_.Send(SendOp(2, 7), "b");
  ASSERT_TRUE(matcher_.SetArea(kReceiver, std::make_shared<BufferRegion>(64), 16).ok());
  EXPECT_THAT(sink_.landings, IsEmpty());
  matcher_.FillArea(kReceiver);
  ASSERT_EQ(sink_.landings.size(), 2u);
  EXPECT_EQ(sink_.landings[0].send, "op 1");
}

// A stream whose sender runs ahead keeps sends waiting; each receive takes
// one without trying the others for an area the session does not have (a
// pass over the queue per message, which cost a third of the local message
// rate once). Counted in owner lookups, which that pass makes: none here.
TEST_F(MatcherTest, AReceiveDoesNotWalkTheSendsWaitingBehindIt) {
  constexpr uint64_t kSends = 2000;
  for (uint64_t op = 1; op <= kSends; ++op) matcher_.Send(SendOp(op, 7), "b");
  sink_.owner_lookups = 0;
  for (uint64_t op = 1; op <= kSends; ++op) matcher_.Receive(ReceiveOp(10000 + op, 7));
  EXPECT_EQ(sink_.deliveries.size(), kSends);
  EXPECT_EQ(sink_.owner_lookups, 0u);
}

TEST_F(MatcherTest, AreaSettingsAreChecked) {
  auto region = std::make_shared<BufferRegion>(64);
  EXPECT_EQ(matcher_.SetArea(kReceiver, region, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(matcher_.SetArea(kReceiver, region, 65).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(matcher_.SetArea(kReceiver, region, 64).ok());
  EXPECT_EQ(matcher_.SetArea(kReceiver, region, 16).status().code(),
            absl::StatusCode::kFailedPrecondition);
  matcher_.Claim(kReceiver, 0);
  EXPECT_EQ(matcher_.free_slots(kReceiver), 0u);
  matcher_.Claim(kReceiver, 0);  // not free: ignored
  EXPECT_EQ(matcher_.free_slots(kReceiver), 0u);
  matcher_.Send(SendOp(1, 7), "b");
  EXPECT_THAT(sink_.landings, IsEmpty());  // the client holds the only slot
}

}  // namespace
}  // namespace axon::daemon
