// RemotePath against a fake peer plane that records the frames it is given
// and delivers the frames a test makes, with a fake clock: host sends and
// their acks, the window, arrivals and their acks, refusals, cancels, a
// malformed frame from a peer, and a peer that answers nothing while its
// connection stays up. It runs on a real ucx::Loop thread, as in axond (the
// path checks that), with no UCX connection at all.
#include "daemon/engine/remote_path.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/wire/data.h"
#include "daemon/ucx/loop.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_match_sink.h"

namespace axon::daemon {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// The peer plane as the path sees it: nodes that are up, frames sent.
class FakePlane final : public PeerPlane {
 public:
  struct Frame {
    std::string node;
    wire::MessageType type;
    uint64_t sequence;
    std::vector<uint8_t> body;
    std::vector<uint8_t> payload;
  };

  void SetHandlersFromLoop(Handlers handlers) override {
    on_data_ = std::move(handlers.on_data);
    on_down_ = std::move(handlers.on_down);
    on_tick_ = std::move(handlers.on_tick);
    on_up_ = std::move(handlers.on_up);
  }
  absl::Status CheckUpFromLoop(const std::string& node) override {
    return up.contains(node) ? absl::OkStatus()
                             : absl::UnavailableError("peer " + node + " is down");
  }
  bool ConnectFromLoop(const std::string& node) override {
    if (!on_demand.contains(node)) return false;
    connecting.insert(node);
    return true;
  }
  // A connection ConnectFromLoop started comes up, or fails.
  void ComeUp(const std::string& node) {
    connecting.erase(node);
    up.insert(node);
    on_up_(node);
  }
  void FailToConnect(const std::string& node, const std::string& why) {
    connecting.erase(node);
    on_down_(node, why);
  }
  void DropFromLoop(const std::string& node, const std::string& why) override {
    dropped.emplace_back(node, why);
    up.erase(node);
    if (on_down_) on_down_(node, why);
  }
  bool PeerTakesCudaFromLoop(const std::string&) const override { return false; }
  // No RMA here: the window RMA path runs against real daemons
  // (window_test).
  absl::StatusOr<std::unique_ptr<ucx::MemoryHandle>> RegisterFromLoop(void*, size_t) override {
    return absl::UnimplementedError("no RMA in the fake plane");
  }
  absl::StatusOr<std::unique_ptr<ucx::RemoteKey>> UnpackKeyFromLoop(
      const std::string&, absl::Span<const uint8_t>) override {
    return absl::UnimplementedError("no RMA in the fake plane");
  }
  void RmaFromLoop(const std::string&, bool, void*, size_t, uint64_t, const ucx::RemoteKey&,
                   ucx::Endpoint::SendDone done) override {
    done(absl::UnimplementedError("no RMA in the fake plane"));
  }
  void FlushFromLoop(const std::string&, ucx::Endpoint::SendDone done) override {
    done(absl::UnimplementedError("no RMA in the fake plane"));
  }
  bool PeerSharesGpusFromLoop(const std::string&) override { return false; }
  absl::Status SendFrameFromLoop(const std::string& node, wire::MessageType type, FrameWriter frame,
                                 ucx::Parts&& parts, ucx::Keepalives&&, ucx::AmProtocol,
                                 uint64_t sequence, ucx::MemoryKind) override {
    if (auto st = CheckUpFromLoop(node); !st.ok()) return st;
    uint64_t payload_length = 0;
    for (const auto& p : parts) payload_length += p.size();
    std::vector<uint8_t> out;
    frame(wire::Header{.type = type, .payload_length = payload_length, .sequence = sequence}, out);
    Frame f{node, type, sequence, {out.begin() + wire::kHeaderSize, out.end()}, {}};
    for (const auto& p : parts) f.payload.insert(f.payload.end(), p.begin(), p.end());
    frames.push_back(std::move(f));
    return absl::OkStatus();
  }

  // A frame from `node`, as the plane would hand it to the path.
  void Deliver(const std::string& node, wire::MessageType type, const std::vector<uint8_t>& body,
               const std::vector<uint8_t>& payload = {}, uint64_t sequence = 0) {
    const wire::Header header{.type = type, .payload_length = payload.size(), .sequence = sequence};
    ucx::AmMessage message;
    message.data.assign(payload.data(), payload.size());
    on_data_(node, header, body, message);
  }
  void Tick() { on_tick_(); }

  // The ids of the kData frames sent, in order.
  std::vector<uint64_t> DataIds() const {
    std::vector<uint64_t> ids;
    for (const Frame& f : frames) {
      if (f.type == wire::MessageType::kData) ids.push_back(wire::DecodeData(f.body)->message_id);
    }
    return ids;
  }
  // Every id acknowledged in kDataAcks frames, and every kDataAck.
  std::vector<uint64_t> AckedIds() const {
    std::vector<uint64_t> ids;
    for (const Frame& f : frames) {
      if (f.type != wire::MessageType::kDataAcks) continue;
      absl::StatusOr<std::vector<uint64_t>> acked = wire::DecodeAcks(f.body);
      EXPECT_TRUE(acked.ok()) << acked.status();
      if (acked.ok()) ids.insert(ids.end(), acked->begin(), acked->end());
    }
    return ids;
  }
  std::vector<wire::AckBody> Acks() const {
    std::vector<wire::AckBody> acks;
    for (const Frame& f : frames) {
      if (f.type == wire::MessageType::kDataAck) acks.push_back(*wire::DecodeAck(f.body));
    }
    return acks;
  }

  std::set<std::string> up;
  std::set<std::string> on_demand;   // connected on first use
  std::set<std::string> connecting;  // asked for by ConnectFromLoop, not up yet
  std::vector<Frame> frames;
  std::vector<std::pair<std::string, std::string>> dropped;

 private:
  DataHandler on_data_;
  DownHandler on_down_;
  std::function<void()> on_tick_;
  UpHandler on_up_;
};

struct Completed {
  uint64_t session, op_id;
  absl::Status status;
  uint64_t length;
};

class RemotePathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = ucx::Loop::Start({.transports = "tcp"});
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = *std::move(loop);
    plane_.up = {"b"};
    Make({});
  }
  void TearDown() override {
    OnLoop([&] { path_.reset(); });
  }

  // A fresh path with `limits` (dead_after 1 s unless set).
  void Make(RemotePath::Limits limits) {
    if (limits.dead_after == absl::Seconds(3)) limits.dead_after = absl::Seconds(1);
    OnLoop([&] {
      path_.reset();
      path_ = std::make_unique<RemotePath>(
          plane_, copier_, limits,
          RemotePath::Hooks{
              .complete =
                  [this](uint64_t session, uint64_t op_id, absl::Status st, uint64_t length,
                         uint64_t, bool) {
                    completed_.push_back({session, op_id, st, length});
                  },
              .arrived =
                  [this](const std::shared_ptr<Incoming>& m) {
                    if (refuse_arrivals_) {
                      path_->RefuseFromLoop(*m, absl::NotFoundError("no endpoint 'x'"));
                    } else {
                      arrived_.push_back(m);
                    }
                  },
              .withdraw =
                  [this](const std::string& node, uint64_t id) {
                    withdrawn_.emplace_back(node, id);
                    return true;
                  },
              .node_down = [this](const std::string& node) { down_.push_back(node); },
          },
          nullptr, clock_);
    });
  }

  // Runs `fn` on the loop thread, as axond runs the path, and waits for it.
  void OnLoop(const std::function<void()>& fn) {
    auto done = loop_->Call<bool>(
        [&] {
          fn();
          return true;
        },
        absl::Seconds(30));
    ASSERT_TRUE(done.ok()) << done.status();
  }

  void Send(uint64_t op_id, uint64_t length = 8, const std::string& node = "b") {
    OnLoop([&] {
      path_->SendFromLoop(Outgoing{.session = 1,
                                   .op_id = op_id,
                                   .node = node,
                                   .from = "a",
                                   .to = "x",
                                   .tag = 7,
                                   .region = memory_,
                                   .offset = 0,
                                   .length = length});
    });
  }
  // A kData frame from node b for endpoint x.
  void Arrive(uint64_t id, uint64_t sequence, std::vector<uint8_t> payload = {1, 2, 3}) {
    wire::DataBody body{.message_id = id, .tag = 9, .from = "r", .to = "x"};
    OnLoop([&] {
      plane_.Deliver("b", wire::MessageType::kData, wire::EncodeData(body), payload, sequence);
    });
  }
  void AckAll(const std::vector<uint64_t>& ids) {
    OnLoop([&] { plane_.Deliver("b", wire::MessageType::kDataAcks, wire::EncodeAcks(ids)); });
  }
  // One kDataAck from node b: message `id` answered with `status`.
  void Answer(uint64_t id, const absl::Status& status) {
    OnLoop([&] { plane_.Deliver("b", wire::MessageType::kDataAck, wire::EncodeAck(id, status)); });
  }

  std::unique_ptr<ucx::Loop> loop_;
  axon::testing::FakeClock clock_;
  FakePlane plane_;
  GpuCopier copier_;
  std::shared_ptr<Region> memory_ = std::make_shared<testing::BufferRegion>(1 << 16);
  std::unique_ptr<RemotePath> path_;
  std::vector<Completed> completed_;
  std::vector<std::shared_ptr<Incoming>> arrived_;
  std::vector<std::pair<std::string, uint64_t>> withdrawn_;
  std::vector<std::string> down_;
  bool refuse_arrivals_ = false;
};

TEST_F(RemotePathTest, ASendGoesOutWithItsBytesAndCompletesOnItsAck) {
  std::memset(memory_->data(), 0x42, 8);
  Send(1);
  ASSERT_THAT(plane_.frames, SizeIs(1));
  const FakePlane::Frame& f = plane_.frames[0];
  EXPECT_EQ(f.type, wire::MessageType::kData);
  EXPECT_EQ(f.sequence, 1u);
  auto body = wire::DecodeData(f.body);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(body->from, "a");
  EXPECT_EQ(body->to, "x");
  EXPECT_EQ(body->tag, 7u);
  EXPECT_EQ(f.payload, std::vector<uint8_t>(8, 0x42));
  EXPECT_THAT(completed_, IsEmpty());  // not before the receiver says so
  AckAll({body->message_id});
  ASSERT_THAT(completed_, SizeIs(1));
  EXPECT_TRUE(completed_[0].status.ok());
  EXPECT_EQ(completed_[0].length, 8u);
}

TEST_F(RemotePathTest, SendsToAMemberNotConnectedYetWaitInOrderForItsConnection) {
  plane_.on_demand = {"c"};
  Send(1, 8, "c");
  Send(2, 8, "c");
  EXPECT_EQ(plane_.connecting, std::set<std::string>{"c"});
  EXPECT_TRUE(plane_.DataIds().empty());
  EXPECT_TRUE(completed_.empty());
  OnLoop([&] { plane_.ComeUp("c"); });
  ASSERT_THAT(plane_.frames, SizeIs(2));
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(plane_.frames[i].node, "c");
    EXPECT_EQ(plane_.frames[i].sequence, i + 1);  // the new connection's first frames
  }
  Send(3, 8, "c");  // up now: straight out
  EXPECT_THAT(plane_.DataIds(), SizeIs(3));
  OnLoop([&] {
    plane_.Deliver("c", wire::MessageType::kDataAcks, wire::EncodeAcks(plane_.DataIds()));
  });
  ASSERT_THAT(completed_, SizeIs(3));
  EXPECT_EQ(completed_[0].op_id, 1u);
  EXPECT_EQ(completed_[1].op_id, 2u);
  EXPECT_TRUE(completed_[0].status.ok());
}

TEST_F(RemotePathTest, SendsWaitingForAConnectionFailWithIt) {
  plane_.on_demand = {"c"};
  Send(1, 8, "c");
  Send(2, 8, "c");
  OnLoop([&] { plane_.FailToConnect("c", "handshake did not finish within 1000 ms"); });
  ASSERT_THAT(completed_, SizeIs(2));
  EXPECT_EQ(completed_[0].op_id, 1u);  // in the order sent
  for (const Completed& c : completed_) {
    EXPECT_EQ(c.status.code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(c.status.message()), HasSubstr("handshake did not finish"));
  }
  EXPECT_TRUE(plane_.DataIds().empty());
}

TEST_F(RemotePathTest, SendsThatNeverLeftGoOnTheNextConnection) {
  Make({.max_in_flight = 1});
  plane_.on_demand = {"c"};
  plane_.up.insert("c");
  Send(1, 8, "c");  // in flight
  Send(2, 8, "c");  // waits behind the window
  ASSERT_THAT(plane_.DataIds(), SizeIs(1));
  // The connection goes (an idle close, or lost): the one sent fails, the one
  // that never left waits for the next connection, which is asked for.
  OnLoop([&] { plane_.DropFromLoop("c", "idle for 300000 ms: closed by agreement"); });
  ASSERT_THAT(completed_, SizeIs(1));
  EXPECT_EQ(completed_[0].op_id, 1u);
  EXPECT_EQ(completed_[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(plane_.connecting, std::set<std::string>{"c"});
  OnLoop([&] { plane_.ComeUp("c"); });
  ASSERT_THAT(plane_.frames, SizeIs(2));
  EXPECT_EQ(plane_.frames[1].sequence, 1u);  // the new connection's first
  OnLoop([&] {
    plane_.Deliver("c", wire::MessageType::kDataAcks, wire::EncodeAcks({plane_.DataIds()[1]}));
  });
  ASSERT_THAT(completed_, SizeIs(2));
  EXPECT_EQ(completed_[1].op_id, 2u);
  EXPECT_TRUE(completed_[1].status.ok()) << completed_[1].status;
}

TEST_F(RemotePathTest, ASendWaitingForAConnectionCanBeCancelled) {
  plane_.on_demand = {"c"};
  Send(1, 8, "c");
  Send(2, 8, "c");
  bool aborted = false;
  OnLoop([&] { aborted = path_->AbortFromLoop(1, 1, absl::DeadlineExceededError("deadline")); });
  EXPECT_TRUE(aborted);
  ASSERT_THAT(completed_, SizeIs(1));
  EXPECT_EQ(completed_[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  OnLoop([&] { plane_.ComeUp("c"); });
  EXPECT_THAT(plane_.DataIds(), SizeIs(1));  // only the second goes
}

TEST_F(RemotePathTest, ASendToANodeThatIsNotUpFailsAtOnce) {
  Send(1, 8, "c");
  ASSERT_THAT(completed_, SizeIs(1));
  EXPECT_EQ(completed_[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(plane_.frames, IsEmpty());
}

TEST_F(RemotePathTest, TheWindowHoldsSendsBackInOrderUntilAcksCome) {
  Make({.max_in_flight = 2});
  for (uint64_t op = 1; op <= 5; ++op) Send(op);
  std::vector<uint64_t> ids = plane_.DataIds();
  ASSERT_THAT(ids, SizeIs(2));
  AckAll({ids[0]});
  ids = plane_.DataIds();
  ASSERT_THAT(ids, SizeIs(3));
  AckAll({ids[1], ids[2]});
  ids = plane_.DataIds();
  ASSERT_THAT(ids, SizeIs(5));
  AckAll({ids[3], ids[4]});
  std::vector<uint64_t> ops;
  for (const Completed& c : completed_) ops.push_back(c.op_id);
  EXPECT_THAT(ops, ElementsAre(1u, 2u, 3u, 4u, 5u));
  // Sequences follow the order sent.
  for (size_t i = 0; i < plane_.frames.size(); ++i) {
    if (plane_.frames[i].type == wire::MessageType::kData) {
      EXPECT_LT(plane_.frames[i].sequence, 6u);
    }
  }
}

TEST_F(RemotePathTest, AFailedAckFailsTheSendWithTheReceiversReason) {
  Send(1);
  const uint64_t id = plane_.DataIds().at(0);
  Answer(id, absl::NotFoundError("no endpoint 'x' on node b"));
  ASSERT_THAT(completed_, SizeIs(1));
  EXPECT_EQ(completed_[0].status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(completed_[0].status.message()), HasSubstr("no endpoint 'x'"));
}

TEST_F(RemotePathTest, AnArrivalLandsAndItsAckGoesInTheNextBatch) {
  Arrive(10, 1, {5, 6, 7});
  ASSERT_THAT(arrived_, SizeIs(1));
  EXPECT_EQ(arrived_[0]->from, "r");
  EXPECT_EQ(arrived_[0]->length(), 3u);
  OnLoop([&] {
    EXPECT_TRUE(path_->LandNowFromLoop(*arrived_[0], *memory_, memory_->data()));
    EXPECT_TRUE(path_->acks_pending());
  });
  EXPECT_EQ(memory_->data()[2], 7);
  EXPECT_THAT(plane_.AckedIds(), IsEmpty());  // batched until the poll ends
  OnLoop([&] { path_->FlushAcksFromLoop(); });
  EXPECT_THAT(plane_.AckedIds(), ElementsAre(10u));
}

TEST_F(RemotePathTest, FramesThatCameEarlyWaitForTheOnesBefore) {
  Arrive(11, 2);
  EXPECT_THAT(arrived_, IsEmpty());
  Arrive(10, 1);
  ASSERT_THAT(arrived_, SizeIs(2));
  EXPECT_EQ(arrived_[0]->message_id, 10u);
  EXPECT_EQ(arrived_[1]->message_id, 11u);
}

TEST_F(RemotePathTest, ARefusedArrivalIsAnsweredAloneWithItsReason) {
  refuse_arrivals_ = true;
  Arrive(10, 1);
  const std::vector<wire::AckBody> acks = plane_.Acks();
  ASSERT_THAT(acks, SizeIs(1));
  EXPECT_EQ(acks[0].message_id, 10u);
  EXPECT_EQ(acks[0].code, absl::StatusCode::kNotFound);
}

TEST_F(RemotePathTest, ASendersCancelWithdrawsAQueuedMessageAndIsAnswered) {
  Arrive(10, 1);
  OnLoop([&] { plane_.Deliver("b", wire::MessageType::kDataCancel, wire::EncodeCancel(10)); });
  EXPECT_THAT(withdrawn_, ElementsAre(std::make_pair(std::string("b"), 10u)));
  const std::vector<wire::AckBody> acks = plane_.Acks();
  ASSERT_THAT(acks, SizeIs(1));
  EXPECT_EQ(acks[0].code, absl::StatusCode::kCancelled);
}

TEST_F(RemotePathTest, CancellingASendInFlightAsksTheReceiver) {
  Send(1);
  const uint64_t id = plane_.DataIds().at(0);
  bool found = false;
  OnLoop([&] { found = path_->AbortFromLoop(1, 1, absl::CancelledError("by the client")); });
  EXPECT_TRUE(found);
  ASSERT_FALSE(plane_.frames.empty());
  EXPECT_EQ(plane_.frames.back().type, wire::MessageType::kDataCancel);
  EXPECT_THAT(completed_, IsEmpty());  // until the receiver answers
  Answer(id, absl::CancelledError("withdrawn"));
  ASSERT_THAT(completed_, SizeIs(1));
  EXPECT_EQ(completed_[0].status.code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(completed_[0].status.message()), HasSubstr("by the client"));
}

// A data frame that does not decode breaks the protocol: the connection
// goes, and what was in flight on it fails instead of waiting.
TEST_F(RemotePathTest, AMalformedDataFrameDropsTheNodeAndFailsItsWork) {
  Send(1);
  std::vector<uint8_t> body = wire::EncodeData(wire::DataBody{.message_id = 10, .to = "x"});
  body.back() = 0xff;  // the probe flag, which is 0 or 1
  OnLoop([&] { plane_.Deliver("b", wire::MessageType::kData, body, {}, 1); });
  ASSERT_THAT(plane_.dropped, SizeIs(1));
  EXPECT_THAT(plane_.dropped[0].second, HasSubstr("protocol error: a malformed data frame"));
  EXPECT_THAT(arrived_, IsEmpty());
  ASSERT_THAT(completed_, SizeIs(1));
  EXPECT_EQ(completed_[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(down_, ElementsAre("b"));
}

// A node that keeps its connection (keepalives flow) but answers none of
// the data in flight to it for peers.dead_after_ms is dropped: a send
// never waits forever.
TEST_F(RemotePathTest, ANodeThatAnswersNothingIsDroppedAfterDeadAfter) {
  Send(1);
  OnLoop([&] { plane_.Tick(); });  // the plane ticks all along
  clock_.Advance(absl::Milliseconds(1000));
  OnLoop([&] { plane_.Tick(); });
  EXPECT_THAT(plane_.dropped, IsEmpty());
  clock_.Advance(absl::Milliseconds(1));
  OnLoop([&] { plane_.Tick(); });
  ASSERT_THAT(plane_.dropped, SizeIs(1));
  EXPECT_THAT(plane_.dropped[0].second, HasSubstr("none acknowledged"));
  EXPECT_THAT(plane_.dropped[0].second, HasSubstr("peers.dead_after_ms"));
  ASSERT_THAT(completed_, SizeIs(1));
  EXPECT_EQ(completed_[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(completed_[0].status.message()), HasSubstr("none acknowledged"));
}

TEST_F(RemotePathTest, AnAnswerKeepsAQuietNodeAliveForAnotherDeadAfter) {
  Send(1);
  Send(2);
  OnLoop([&] { plane_.Tick(); });
  clock_.Advance(absl::Milliseconds(800));
  AckAll({plane_.DataIds().at(0)});
  OnLoop([&] { plane_.Tick(); });
  clock_.Advance(absl::Milliseconds(800));  // 1.6 s since the send, 0.8 s since the answer
  OnLoop([&] { plane_.Tick(); });
  EXPECT_THAT(plane_.dropped, IsEmpty());
  clock_.Advance(absl::Milliseconds(201));
  OnLoop([&] { plane_.Tick(); });
  ASSERT_THAT(plane_.dropped, SizeIs(1));
  ASSERT_THAT(completed_, SizeIs(2));
  EXPECT_TRUE(completed_[0].status.ok());
  EXPECT_EQ(completed_[1].status.code(), absl::StatusCode::kUnavailable);
}

TEST_F(RemotePathTest, ANewConnectionIsANewLink) {
  Send(1);
  OnLoop([&] { plane_.DropFromLoop("b", "connection reset"); });
  ASSERT_THAT(completed_, SizeIs(1));
  EXPECT_THAT(std::string(completed_[0].status.message()),
              HasSubstr("node b is down: connection reset"));
  plane_.up.insert("b");
  Send(2);
  // Sequences start again at 1 on the new connection.
  EXPECT_EQ(plane_.frames.back().sequence, 1u);
  // An ack for the old connection's message answers nothing now.
  const uint64_t old_id = plane_.DataIds().at(0);
  AckAll({old_id});
  EXPECT_THAT(completed_, SizeIs(1));
}

}  // namespace
}  // namespace axon::daemon
