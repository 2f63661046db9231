// NodeLink against a fake transport (it records the frames) and a fake clock:
// order per pair, the window, holds, cancel and a node going down at every
// state of a send, acks, and the stall check.
#include "daemon/link/node_link.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/wire/data.h"
#include "tests/support/fake_clock.h"

namespace axon::daemon {
namespace {

using ::testing::ElementsAre;
using testing::FakeClock;
using ::testing::HasSubstr;

// Frames as the link sent them.
class FakeTransport final : public LinkTransport {
 public:
  struct Frame {
    std::string node;
    wire::MessageType type;
    std::vector<uint8_t> body;
  };
  void SendControl(const std::string& node, wire::MessageType type,
                   absl::Span<const uint8_t> body) override {
    frames.push_back({node, type, {body.begin(), body.end()}});
  }
  void Drop(const std::string& node, const std::string& why) override {
    dropped.emplace_back(node, why);
  }

  // The ids of the kDataCancel frames, in order.
  std::vector<uint64_t> Cancels() const {
    std::vector<uint64_t> ids;
    for (const Frame& f : frames) {
      if (f.type == wire::MessageType::kDataCancel) ids.push_back(*wire::DecodeCancel(f.body));
    }
    return ids;
  }

  std::vector<Frame> frames;
  std::vector<std::pair<std::string, std::string>> dropped;
};

Outgoing Send(uint64_t session, uint64_t op_id) {
  Outgoing o;
  o.session = session;
  o.op_id = op_id;
  o.node = "b";
  return o;
}

std::vector<uint64_t> Ops(const std::vector<Outgoing>& sends) {
  std::vector<uint64_t> ops;
  for (const Outgoing& o : sends) ops.push_back(o.op_id);
  return ops;
}

class NodeLinkTest : public ::testing::Test {
 protected:
  std::unique_ptr<NodeLink> Make(uint64_t max_in_flight = 4) {
    return std::make_unique<NodeLink>(
        "b", 7, NodeLink::Limits{.max_in_flight = max_in_flight, .dead_after = absl::Seconds(3)},
        transport_, clock_, batches_);
  }
  // Sends `op` of session 1 as message `id`, as the engine does: now if the
  // link lets it, else it waits.
  void Submit(NodeLink& link, uint64_t id, uint64_t op) {
    if (link.MustWait()) {
      link.Wait(Send(1, op));
    } else {
      link.Sent(id, Send(1, op));
    }
  }

  FakeTransport transport_;
  FakeClock clock_;
  size_t batches_ = 0;
};

TEST_F(NodeLinkTest, SequencesStartAtOneAndCountSentFrames) {
  auto link = Make();
  EXPECT_EQ(link->node(), "b");
  EXPECT_EQ(link->generation(), 7u);
  EXPECT_EQ(link->next_sequence(), 1u);
  link->Sent(10, Send(1, 1));
  link->Sent(11, Send(1, 2));
  EXPECT_EQ(link->next_sequence(), 3u);
  EXPECT_EQ(link->in_flight(), 2u);
  ASSERT_NE(link->InFlight(11), nullptr);
  EXPECT_EQ(link->InFlight(11)->op_id, 2u);
  EXPECT_EQ(link->InFlight(12), nullptr);
}

TEST_F(NodeLinkTest, DeliversInSequenceOrderWhateverOrderFramesCome) {
  auto link = Make();
  std::vector<uint64_t> delivered;
  auto deliver = [&](const std::shared_ptr<Incoming>& in) { delivered.push_back(in->message_id); };
  auto frame = [](uint64_t id) {
    auto in = std::make_shared<Incoming>();
    in->message_id = id;
    return in;
  };
  EXPECT_EQ(link->Receive(3, frame(103), deliver), NodeLink::Arrival::kEarly);
  EXPECT_EQ(link->Receive(2, frame(102), deliver), NodeLink::Arrival::kEarly);
  EXPECT_TRUE(delivered.empty());
  EXPECT_EQ(link->Receive(1, frame(101), deliver), NodeLink::Arrival::kDelivered);
  EXPECT_THAT(delivered, ElementsAre(101, 102, 103));
  EXPECT_EQ(link->Receive(4, frame(104), deliver), NodeLink::Arrival::kDelivered);
  EXPECT_THAT(delivered, ElementsAre(101, 102, 103, 104));
}

TEST_F(NodeLinkTest, RefusesASequenceSeenBeforeOrParkedTwice) {
  auto link = Make();
  int delivered = 0;
  auto deliver = [&](const std::shared_ptr<Incoming>&) { ++delivered; };
  auto in = std::make_shared<Incoming>();
  EXPECT_EQ(link->Receive(1, in, deliver), NodeLink::Arrival::kDelivered);
  EXPECT_EQ(link->Receive(1, in, deliver), NodeLink::Arrival::kRepeated);
  EXPECT_EQ(link->Receive(3, in, deliver), NodeLink::Arrival::kEarly);
  EXPECT_EQ(link->Receive(3, in, deliver), NodeLink::Arrival::kRepeated);
  EXPECT_EQ(delivered, 1);
}

TEST_F(NodeLinkTest, AFullWindowQueuesInOrderAndEachAnswerLetsOneGo) {
  auto link = Make(/*max_in_flight=*/2);
  Submit(*link, 1, 1);
  Submit(*link, 2, 2);
  EXPECT_TRUE(link->MustWait());
  Submit(*link, 0, 3);
  Submit(*link, 0, 4);
  EXPECT_EQ(link->waiting(), 2u);
  EXPECT_FALSE(link->TakeReady().has_value());
  ASSERT_TRUE(link->Answered(1).has_value());
  auto next = link->TakeReady();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->op_id, 3u);
  link->Sent(3, *std::move(next));
  EXPECT_FALSE(link->TakeReady().has_value());  // full again
  link->Settle(2);
  next = link->TakeReady();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->op_id, 4u);
  // Something waiting keeps a new send behind it even with room.
  link->Wait(Send(1, 5));
  link->Settle(3);
  EXPECT_TRUE(link->MustWait());
}

TEST_F(NodeLinkTest, AHoldKeepsLaterSendsBackUntilReleased) {
  auto link = Make();
  link->Hold(0);
  EXPECT_TRUE(link->MustWait());
  link->Wait(Send(1, 1));
  EXPECT_FALSE(link->TakeReady().has_value());
  link->Hold(42);
  EXPECT_FALSE(link->Release(9));  // not a hold
  EXPECT_TRUE(link->Release(0));
  EXPECT_FALSE(link->TakeReady().has_value());  // 42 still holds
  EXPECT_TRUE(link->Release(42));
  EXPECT_FALSE(link->Release(42));
  auto next = link->TakeReady();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->op_id, 1u);
}

TEST_F(NodeLinkTest, AnAnswerForNoSendInFlightIsNothing) {
  auto link = Make();
  EXPECT_FALSE(link->Answered(5).has_value());
  link->Settle(5);
  link->Sent(5, Send(1, 1));
  EXPECT_TRUE(link->Answered(5).has_value());
  EXPECT_FALSE(link->Answered(5).has_value());
}

TEST_F(NodeLinkTest, CancelWhileWaitingTakesItOutWithoutAWord) {
  auto link = Make(1);
  Submit(*link, 1, 1);
  Submit(*link, 0, 2);
  Submit(*link, 0, 3);
  auto taken = link->TakeWaiting(1, 2);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->op_id, 2u);
  EXPECT_FALSE(link->TakeWaiting(1, 2).has_value());
  EXPECT_FALSE(link->Withdraw(1, 2, absl::CancelledError("x")));
  EXPECT_TRUE(transport_.frames.empty());
  link->Settle(1);
  EXPECT_EQ(link->TakeReady()->op_id, 3u);  // the order of the rest holds
}

TEST_F(NodeLinkTest, CancelInFlightWithdrawsEachPieceOnceAndKeepsTheFirstReason) {
  auto link = Make();
  link->Sent(1, Send(1, 1));
  link->Sent(2, Send(1, 2));  // two chunks of op 2
  link->Sent(3, Send(1, 2));
  EXPECT_TRUE(link->Withdraw(1, 2, absl::DeadlineExceededError("deadline")));
  EXPECT_THAT(transport_.Cancels(), ::testing::UnorderedElementsAre(2, 3));
  EXPECT_TRUE(link->Withdraw(1, 2, absl::CancelledError("again")));
  EXPECT_EQ(transport_.Cancels().size(), 2u);  // not withdrawn twice
  EXPECT_EQ(link->InFlight(2)->aborted.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(link->InFlight(1)->aborted.ok());
  EXPECT_FALSE(link->Withdraw(2, 1, absl::CancelledError("other session")));
  // The receiver's answer completes it: the send is still in the window.
  EXPECT_EQ(link->in_flight(), 3u);
}

TEST_F(NodeLinkTest, ASessionClosingDropsItsWaitingAndWithdrawsItsSendsInFlight) {
  auto link = Make(2);
  link->Sent(1, Send(1, 1));
  link->Sent(2, Send(2, 1));
  link->Wait(Send(1, 2));
  link->Wait(Send(2, 2));
  link->Wait(Send(1, 3));
  ASSERT_TRUE(link->Withdraw(2, 1, absl::DeadlineExceededError("deadline")));
  link->DropSession(2, absl::CancelledError("the client's session closed"));
  EXPECT_THAT(transport_.Cancels(),
              ElementsAre(2, 2));  // withdrawn again; the receiver answers once
  EXPECT_EQ(link->InFlight(2)->aborted.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(link->waiting(), 2u);
  link->DropSession(1, absl::CancelledError("the client's session closed"));
  EXPECT_EQ(link->waiting(), 0u);
  EXPECT_EQ(link->InFlight(1)->aborted.code(), absl::StatusCode::kCancelled);
}

TEST_F(NodeLinkTest, NodeDownHandsBackEverySendInTheOrderSent) {
  auto link = Make(3);
  for (uint64_t id : {9, 4, 6}) link->Sent(id, Send(1, id));
  link->Wait(Send(1, 20));
  link->Wait(Send(1, 21));
  link->Hold(0);
  std::vector<Outgoing> all = link->TakeUnanswered();
  EXPECT_THAT(Ops(all), ElementsAre(4, 6, 9, 20, 21));
  EXPECT_EQ(link->in_flight(), 0u);
  EXPECT_EQ(link->waiting(), 0u);
  EXPECT_FALSE(link->held());
  EXPECT_TRUE(link->TakeUnanswered().empty());
}

TEST_F(NodeLinkTest, NodeDownWithNothingUnderWay) {
  auto link = Make();
  EXPECT_TRUE(link->TakeUnanswered().empty());
}

TEST_F(NodeLinkTest, DeliveriesAreAckedInOneBatchPerFlush) {
  auto link = Make();
  link->Ack(5, absl::OkStatus());
  link->Ack(6, absl::OkStatus());
  EXPECT_TRUE(transport_.frames.empty());
  EXPECT_TRUE(link->acks_pending());
  EXPECT_EQ(batches_, 1u);
  link->FlushAcks();
  ASSERT_EQ(transport_.frames.size(), 1u);
  EXPECT_EQ(transport_.frames[0].type, wire::MessageType::kDataAcks);
  EXPECT_THAT(*wire::DecodeAcks(transport_.frames[0].body), ElementsAre(5, 6));
  EXPECT_EQ(batches_, 0u);
  link->FlushAcks();  // nothing to send
  EXPECT_EQ(transport_.frames.size(), 1u);
}

TEST_F(NodeLinkTest, AFailureGoesAtOnceAfterTheBatchBeforeIt) {
  auto link = Make();
  link->Ack(5, absl::OkStatus());
  link->Ack(6, absl::ResourceExhaustedError("no room"));
  ASSERT_EQ(transport_.frames.size(), 2u);
  EXPECT_EQ(transport_.frames[0].type, wire::MessageType::kDataAcks);
  EXPECT_EQ(transport_.frames[1].type, wire::MessageType::kDataAck);
  auto ack = wire::DecodeAck(transport_.frames[1].body);
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->message_id, 6u);
  EXPECT_EQ(ack->code, absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ack->message, "no room");
  EXPECT_EQ(batches_, 0u);
}

TEST_F(NodeLinkTest, AFullBatchGoesWithoutWaitingForTheFlush) {
  auto link = Make();
  for (uint64_t id = 1; id <= wire::kMaxAckedIds; ++id) link->Ack(id, absl::OkStatus());
  ASSERT_EQ(transport_.frames.size(), 1u);
  EXPECT_EQ(wire::DecodeAcks(transport_.frames[0].body)->size(), wire::kMaxAckedIds);
  EXPECT_FALSE(link->acks_pending());
  EXPECT_EQ(batches_, 0u);
}

TEST_F(NodeLinkTest, AcksOwedToANodeGoneAreForgotten) {
  auto other = Make();
  auto link = Make();
  link->Ack(5, absl::OkStatus());
  other->Ack(1, absl::OkStatus());
  EXPECT_EQ(batches_, 2u);
  link.reset();
  EXPECT_EQ(batches_, 1u);
  EXPECT_TRUE(transport_.frames.empty());
}

TEST_F(NodeLinkTest, IdleOrAnsweringLinksNeverStall) {
  auto link = Make();
  EXPECT_FALSE(link->Stalled().has_value());
  clock_.Advance(absl::Hours(1));
  EXPECT_FALSE(link->Stalled().has_value());  // nothing in flight
  link->Sent(1, Send(1, 1));
  link->Sent(2, Send(1, 2));
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(absl::Seconds(2));
    link->Sent(10 + i, Send(1, 10 + i));
    link->Settle(i < 2 ? i + 1 : 10 + i - 2);  // one answer per tick
    EXPECT_FALSE(link->Stalled().has_value()) << i;
  }
}

TEST_F(NodeLinkTest, SendsUnansweredPastDeadAfterStallTheLink) {
  auto link = Make();
  link->Sent(1, Send(1, 1));
  link->Sent(2, Send(1, 2));
  EXPECT_FALSE(link->Stalled().has_value());  // starts the watch
  clock_.Advance(absl::Seconds(3));
  EXPECT_FALSE(link->Stalled().has_value());  // not past dead_after yet
  clock_.Advance(absl::Milliseconds(1));
  auto why = link->Stalled();
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("2 message(s) in flight and none acknowledged for 3000 ms"));
  EXPECT_THAT(*why, HasSubstr("peers.dead_after_ms"));
  // An answer restarts the watch.
  link->Settle(1);
  EXPECT_FALSE(link->Stalled().has_value());
  clock_.Advance(absl::Seconds(2));
  EXPECT_FALSE(link->Stalled().has_value());
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(link->Stalled().has_value());
}

TEST_F(NodeLinkTest, AWithdrawnSendStillCountsUntilAnswered) {
  // A cancel is a request: the receiver's answer, not the cancel, takes the
  // send out of the window, so a peer that answers nothing still stalls.
  auto link = Make();
  link->Sent(1, Send(1, 1));
  EXPECT_FALSE(link->Stalled().has_value());
  ASSERT_TRUE(link->Withdraw(1, 1, absl::CancelledError("x")));
  clock_.Advance(absl::Seconds(4));
  EXPECT_TRUE(link->Stalled().has_value());
}

}  // namespace
}  // namespace axon::daemon
