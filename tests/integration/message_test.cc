// Messages between endpoints through real daemons and the shared-memory
// rings, each test twice: both clients on one daemon (local), and the sender
// on node-a, the receiver on node-b (remote, over UCX). Sizes with checksums
// across the eager/rendezvous boundary, back-pressure, order, and the
// failure statuses.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstring>
#include <deque>
#include <random>

#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "tests/support/pair_test.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

// The daemons' eager limit: sizes around it cross the protocol boundary.
constexpr size_t kEagerLimit = kTestEagerLimit;

class MessageTest : public PairTest {};

INSTANTIATE_TEST_SUITE_P(Path, MessageTest, ::testing::Values(false, true), PathName);

TEST_P(MessageTest, EverySizeArrivesIntact) {
  const size_t kMax = 256u << 20;
  auto src = sender_->AllocateHost(kMax);
  auto dst = receiver_->AllocateHost(kMax);
  ASSERT_TRUE(src.ok() && dst.ok());
  std::mt19937_64 random(42);
  for (size_t i = 0; i < kMax / 8; ++i) {
    const uint64_t v = random();
    std::memcpy(static_cast<uint8_t*>(src->data()) + i * 8, &v, 8);
  }
  for (size_t size : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{4096},
                      kEagerLimit - 1, kEagerLimit, kEagerLimit + 1, size_t{1} << 20, kMax}) {
    SCOPED_TRACE(size);
    std::memset(dst->data(), 0, std::min(kMax, size + 64));
    const size_t offset = size == kMax ? 0 : 3;  // unaligned where there is room
    auto recv = receiver_->PostRecv("b", size, *dst, 0, kMax);
    auto send = sender_->Send("a", At("b"), size, *src, offset, size);
    ASSERT_TRUE(recv.ok() && send.ok());
    auto sent = sender_->Wait(*send, 60000);
    auto received = receiver_->Wait(*recv, 60000);
    ASSERT_TRUE(sent.ok() && received.ok());
    EXPECT_TRUE(sent->status.ok()) << sent->status;
    ASSERT_TRUE(received->status.ok()) << received->status;
    EXPECT_EQ(received->length, size);
    EXPECT_EQ(received->tag, size);
    EXPECT_EQ(Checksum(dst->data(), size),
              Checksum(static_cast<uint8_t*>(src->data()) + offset, size));
  }
}

TEST_P(MessageTest, ASendWaitsForItsReceive) {
  auto src = sender_->AllocateHost(4096);
  auto dst = receiver_->AllocateHost(4096);
  ASSERT_TRUE(src.ok() && dst.ok());
  std::memset(src->data(), 0x7e, 4096);
  auto send = sender_->Send("a", At("b"), 9, *src, 0, 4096);
  ASSERT_TRUE(send.ok());
  // No receive posted: back-pressure, not a drop.
  EXPECT_EQ(sender_->Wait(*send, 200).status().code(), absl::StatusCode::kDeadlineExceeded);
  auto recv = receiver_->PostRecv("b", 9, *dst, 0, 4096);
  ASSERT_TRUE(recv.ok());
  EXPECT_TRUE(sender_->Wait(*send)->status.ok());
  EXPECT_TRUE(receiver_->Wait(*recv)->status.ok());
  EXPECT_EQ(static_cast<uint8_t*>(dst->data())[4095], 0x7e);
}

TEST_P(MessageTest, OrderIsKeptAndNothingIsLost) {
  constexpr size_t kMessages = 5000;
  auto src = sender_->AllocateHost(kMessages * 8);
  auto dst = receiver_->AllocateHost(kMessages * 8);
  ASSERT_TRUE(src.ok() && dst.ok());
  std::vector<Operation> sends, recvs;
  for (uint64_t i = 0; i < kMessages; ++i) {
    std::memcpy(static_cast<uint8_t*>(src->data()) + i * 8, &i, 8);
    auto send = sender_->Send("a", At("b"), 1, *src, i * 8, 8);
    ASSERT_TRUE(send.ok());
    sends.push_back(*send);
  }
  for (uint64_t i = 0; i < kMessages; ++i) {
    auto recv = receiver_->PostRecv("b", 1, *dst, i * 8, 8);
    ASSERT_TRUE(recv.ok());
    recvs.push_back(*recv);
  }
  for (auto op : recvs) ASSERT_TRUE(receiver_->Wait(op)->status.ok());
  for (auto op : sends) ASSERT_TRUE(sender_->Wait(op)->status.ok());
  for (uint64_t i = 0; i < kMessages; ++i) {
    uint64_t got;
    std::memcpy(&got, static_cast<uint8_t*>(dst->data()) + i * 8, 8);
    ASSERT_EQ(got, i) << "message " << i << " out of order or lost";
  }
}

// Sizes that travel differently between daemons, interleaved on one tag:
// small eager ones, an eager one larger than a shared-memory segment, a
// rendezvous one, and empty ones. Order and bytes hold for all of them.
TEST_P(MessageTest, MixedSizesKeepTheirOrder) {
  constexpr size_t kMessages = 300;
  constexpr size_t kSlot = 20000;
  const size_t sizes[] = {8, 100, 9000, kSlot, 0, 64};
  auto src = sender_->AllocateHost(kMessages * kSlot);
  auto dst = receiver_->AllocateHost(kMessages * kSlot);
  ASSERT_TRUE(src.ok() && dst.ok());
  auto* in = static_cast<uint8_t*>(src->data());
  for (size_t i = 0; i < kMessages * kSlot; ++i) in[i] = static_cast<uint8_t>(i * 7 + i / kSlot);
  std::vector<Operation> sends, recvs;
  for (size_t i = 0; i < kMessages; ++i) {
    auto recv = receiver_->PostRecv("b", 5, *dst, i * kSlot, kSlot);
    ASSERT_TRUE(recv.ok());
    recvs.push_back(*recv);
  }
  for (size_t i = 0; i < kMessages; ++i) {
    auto send = sender_->Send("a", At("b"), 5, *src, i * kSlot, sizes[i % std::size(sizes)]);
    ASSERT_TRUE(send.ok());
    sends.push_back(*send);
  }
  for (size_t i = 0; i < kMessages; ++i) {
    auto received = receiver_->Wait(recvs[i], 30000);
    ASSERT_TRUE(received.ok() && received->status.ok()) << i;
    const size_t size = sizes[i % std::size(sizes)];
    ASSERT_EQ(received->length, size) << "message " << i << " out of order";
    EXPECT_EQ(Checksum(static_cast<uint8_t*>(dst->data()) + i * kSlot, size),
              Checksum(in + i * kSlot, size))
        << i;
  }
  for (auto op : sends) ASSERT_TRUE(sender_->Wait(op, 30000)->status.ok());
}

TEST_P(MessageTest, FailuresSayWhy) {
  auto src = sender_->AllocateHost(4096);
  auto small = receiver_->AllocateHost(16);
  ASSERT_TRUE(src.ok() && small.ok());
  auto status_of = [](Client& c, absl::StatusOr<Operation> op) {
    EXPECT_TRUE(op.ok());
    return c.Wait(*op)->status.code();
  };
  EXPECT_EQ(status_of(*sender_, sender_->Send("a", At("nobody"), 1, *src, 0, 10)),
            absl::StatusCode::kNotFound);
  // The daemon's reason reaches the client.
  auto unknown = sender_->Wait(*sender_->Send("a", At("nobody"), 1, *src, 0, 10));
  ASSERT_TRUE(unknown.ok());
  EXPECT_THAT(unknown->status.message(), HasSubstr("no endpoint 'nobody'"));
  EXPECT_EQ(status_of(*sender_, sender_->Send("a", At("b"), 1, *src, 4000, 200)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status_of(*sender_, sender_->Send("a", At("b"), 1, *src, UINT64_MAX, 2)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status_of(*sender_, sender_->Send("b", At("b"), 1, *src, 0, 8)),
            absl::StatusCode::kFailedPrecondition);  // "b" is not the sender's endpoint
  // No such node: without a peer plane, and among the peers.
  EXPECT_EQ(status_of(*sender_, sender_->Send("a", "other-node/b", 1, *src, 0, 8)),
            remote() ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition);
  // A message larger than the posted buffer: both sides are told.
  auto recv = receiver_->PostRecv("b", 2, *small, 0, 16);
  auto send = sender_->Send("a", At("b"), 2, *src, 0, 100);
  ASSERT_TRUE(recv.ok() && send.ok());
  EXPECT_EQ(sender_->Wait(*send)->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(receiver_->Wait(*recv)->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(sending_daemon().Ctl({"health"}).exit_code, 0);
  EXPECT_EQ(receiving_daemon().Ctl({"health"}).exit_code, 0);
}

TEST_P(MessageTest, AnUnregisteredRegionCannotBeSentFrom) {
  auto src = sender_->AllocateHost(64);
  auto dst = receiver_->AllocateHost(64);
  ASSERT_TRUE(src.ok() && dst.ok());
  auto recv = receiver_->PostRecv("b", 3, *dst, 0, 64);
  auto send = sender_->Send("a", At("b"), 3, *src, 0, 64);  // the daemon now knows the region
  ASSERT_TRUE(recv.ok() && send.ok());
  ASSERT_TRUE(sender_->Wait(*send)->status.ok());
  ASSERT_TRUE(receiver_->Wait(*recv)->status.ok());
  ASSERT_TRUE(sender_->Unregister(src->region_id()).ok());
  auto again = sender_->Send("a", At("b"), 3, *src, 0, 64);
  ASSERT_TRUE(again.ok());
  auto done = sender_->Wait(*again);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(done->status.message(), HasSubstr("unknown region"));
}

TEST_P(MessageTest, ASendToAReceiverThatLeavesFails) {
  auto src = sender_->AllocateHost(4096);
  ASSERT_TRUE(src.ok());
  auto send = sender_->Send("a", At("b"), 5, *src, 0, 64);
  ASSERT_TRUE(send.ok());
  EXPECT_EQ(sender_->Wait(*send, 200).status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(receiver_->Detach().ok());
  auto done = sender_->Wait(*send, 10000);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status.code(), absl::StatusCode::kUnavailable);
}

// 100k small messages from 4 sender processes to one receiver: none lost,
// duplicated, or reordered within a pair.
TEST_P(MessageTest, FourSendersHundredThousandMessages) {
  constexpr uint64_t kSenders = 4, kEach = 25000, kSize = 16, kWindow = 512;
  std::vector<std::unique_ptr<Child>> senders;
  for (uint64_t i = 0; i < kSenders; ++i) {
    const std::string name = "s" + std::to_string(i);
    senders.push_back(std::make_unique<Child>(
        std::vector<std::string>{HelperPath("msg_peer"), sending_daemon().socket(), name, "send",
                                 At("b"), std::to_string(kEach), "--id", std::to_string(i),
                                 "--window", "128"},
        dir_.File(name + ".log")));
  }
  auto dst = receiver_->AllocateHost(kWindow * kSize);
  ASSERT_TRUE(dst.ok());
  std::vector<uint64_t> next(kSenders, 0);
  std::deque<Operation> posted;
  uint64_t received = 0, slot = 0;
  std::deque<uint64_t> slots;
  while (received < kSenders * kEach) {
    while (posted.size() < kWindow && received + posted.size() < kSenders * kEach) {
      auto op = receiver_->PostRecv("b", 1, *dst, slot * kSize, kSize);
      ASSERT_TRUE(op.ok()) << op.status();
      posted.push_back(*op);
      slots.push_back(slot);
      slot = (slot + 1) % kWindow;
    }
    auto done = receiver_->Wait(posted.front(), 60000);
    ASSERT_TRUE(done.ok()) << done.status() << " after " << received << " messages";
    ASSERT_TRUE(done->status.ok()) << done->status;
    uint64_t id, seq;
    const auto* p = static_cast<const uint8_t*>(dst->data()) + slots.front() * kSize;
    std::memcpy(&id, p, 8);
    std::memcpy(&seq, p + 8, 8);
    ASSERT_LT(id, kSenders);
    ASSERT_EQ(seq, next[id]) << "sender " << id << ": lost, duplicated or reordered";
    ++next[id];
    ++received;
    posted.pop_front();
    slots.pop_front();
  }
  for (auto& sender : senders) {
    EXPECT_EQ(sender->Wait(std::chrono::seconds(30)), 0) << sender->Log();
  }
}

// The receiver dies mid-stream: the sender's remaining sends fail, none hangs.
TEST_P(MessageTest, ReceiverKilledMidStream) {
  ASSERT_TRUE(receiver_->UnbindEndpoint("b").ok());
  Child receiver(
      {HelperPath("msg_peer"), receiving_daemon().socket(), "b", "recv", "10", "--size", "4096"},
      dir_.File("receiver.log"));
  ASSERT_TRUE(WaitFor([&] { return receiver.Log().find("posted") != std::string::npos; },
                      std::chrono::seconds(20)))
      << receiver.Log();
  auto src = sender_->AllocateHost(4096);
  ASSERT_TRUE(src.ok());
  std::vector<Operation> sends;
  for (int i = 0; i < 100; ++i) {
    auto op = sender_->Send("a", At("b"), 1, *src, 0, 4096);
    ASSERT_TRUE(op.ok());
    sends.push_back(*op);
  }
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(sender_->Wait(sends[i])->status.ok()) << i;
  receiver.Signal(SIGKILL);
  receiver.Wait(std::chrono::seconds(10));
  for (int i = 10; i < 100; ++i) {
    auto done = sender_->Wait(sends[i], 20000);
    ASSERT_TRUE(done.ok()) << "send " << i << " hangs: " << done.status();
    // Queued at the receiver: UNAVAILABLE; arriving after it left: NOT_FOUND.
    EXPECT_THAT(done->status.code(),
                ::testing::AnyOf(absl::StatusCode::kUnavailable, absl::StatusCode::kNotFound))
        << done->status;
  }
  EXPECT_EQ(receiving_daemon().Ctl({"health"}).exit_code, 0);
}

// The sender dies with a large send in flight (the receiver never posts):
// both daemons stay up, and the sending daemon's mapped client bytes and open
// fds return to their baseline.
TEST_P(MessageTest, SenderKilledMidTransfer) {
  const pid_t daemon = sending_daemon().process().pid();
  const uint64_t mapped_before = MappedClientBytes(daemon);
  const int fds_before = OpenFds(daemon);
  Child sender({HelperPath("msg_peer"), sending_daemon().socket(), "doomed", "send", At("b"), "4",
                "--size", std::to_string(32 << 20), "--window", "4", "--hold"},
               dir_.File("sender.log"));
  ASSERT_TRUE(WaitFor([&] { return sender.Log().find("submitted") != std::string::npos; },
                      std::chrono::seconds(20)))
      << sender.Log();
  EXPECT_EQ(MappedClientBytes(daemon), mapped_before + (128u << 20));
  sender.Signal(SIGKILL);
  sender.Wait(std::chrono::seconds(10));
  EXPECT_TRUE(
      WaitFor([&] { return MappedClientBytes(daemon) == mapped_before; }, std::chrono::seconds(10)))
      << MappedClientBytes(daemon) << " bytes mapped, " << mapped_before << " before";
  EXPECT_TRUE(WaitFor([&] { return OpenFds(daemon) <= fds_before; }, std::chrono::seconds(10)))
      << OpenFds(daemon) << " fds open, " << fds_before << " before";
  EXPECT_EQ(sending_daemon().Ctl({"health"}).exit_code, 0);
  EXPECT_EQ(receiving_daemon().Ctl({"health"}).exit_code, 0);
  // The receiver's endpoint still works: a new message arrives.
  auto src = sender_->AllocateHost(64);
  auto dst = receiver_->AllocateHost(64);
  ASSERT_TRUE(src.ok() && dst.ok());
  auto recv = receiver_->PostRecv("b", 1, *dst, 0, 64);
  auto send = sender_->Send("a", At("b"), 1, *src, 0, 64);
  ASSERT_TRUE(recv.ok() && send.ok());
  EXPECT_TRUE(sender_->Wait(*send)->status.ok());
  auto posted = receiver_->Wait(*recv);
  ASSERT_TRUE(posted.ok()) << posted.status();
  EXPECT_TRUE(posted->status.ok()) << posted->status;
}

// A send nobody receives fails at its deadline; a receive too. Cancel
// withdraws a pending send; a cancelled or expired send never arrives later.
TEST_P(MessageTest, DeadlinesAndCancel) {
  auto src = sender_->AllocateHost(1 << 20);
  auto dst = receiver_->AllocateHost(1 << 20);
  ASSERT_TRUE(src.ok() && dst.ok());
  for (size_t size : {size_t{64}, size_t{1} << 20}) {  // eager and rendezvous
    SCOPED_TRACE(size);
    auto expiring = sender_->Send("a", At("b"), 1, *src, 0, size, {.timeout_ms = 300});
    ASSERT_TRUE(expiring.ok());
    auto expired = sender_->Wait(*expiring, 10000);
    ASSERT_TRUE(expired.ok()) << expired.status();
    EXPECT_EQ(expired->status.code(), absl::StatusCode::kDeadlineExceeded) << expired->status;
    auto cancelled = sender_->Send("a", At("b"), 1, *src, 0, size);
    ASSERT_TRUE(cancelled.ok());
    EXPECT_EQ(sender_->Wait(*cancelled, 200).status().code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_TRUE(sender_->Cancel(*cancelled).ok());
    auto done = sender_->Wait(*cancelled, 10000);
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(done->status.code(), absl::StatusCode::kCancelled) << done->status;
    EXPECT_EQ(sender_->Cancel(*cancelled).code(), absl::StatusCode::kNotFound);
  }
  // Neither arrives later: the next message is the one that lands.
  std::memset(src->data(), 0x42, 16);
  auto recv = receiver_->PostRecv("b", 1, *dst, 0, 1 << 20);
  auto send = sender_->Send("a", At("b"), 1, *src, 0, 16);
  ASSERT_TRUE(recv.ok() && send.ok());
  auto got = receiver_->Wait(*recv);
  ASSERT_TRUE(got.ok() && got->status.ok());
  EXPECT_EQ(got->length, 16u);
  EXPECT_TRUE(sender_->Wait(*send)->status.ok());
  // A receive with a deadline.
  auto lonely = receiver_->PostRecv("b", 77, *dst, 0, 64, {.timeout_ms = 200});
  ASSERT_TRUE(lonely.ok());
  EXPECT_EQ(receiver_->Wait(*lonely)->status.code(), absl::StatusCode::kDeadlineExceeded);
}

// Messages with no posted receive land in the receive area; a full area is
// back-pressure on the sender (never a drop), and releasing a slot lets the
// next message in. Order per pair holds through the area.
TEST_P(MessageTest, ReceiveAreaBackPressure) {
  constexpr size_t kSlots = 4, kSlot = 64 << 10;  // larger than the eager limit
  auto area = receiver_->AllocateHost(kSlots * kSlot);
  auto src = sender_->AllocateHost(16 * kSlot);
  ASSERT_TRUE(area.ok() && src.ok());
  auto slots = receiver_->SetReceiveArea(*area, kSlot);
  ASSERT_TRUE(slots.ok()) << slots.status();
  EXPECT_EQ(*slots, kSlots);
  EXPECT_EQ(receiver_->SetReceiveArea(*area, kSlot).status().code(),
            absl::StatusCode::kFailedPrecondition);
  std::vector<Operation> sends;
  for (uint64_t i = 0; i < 8; ++i) {
    const size_t size = i % 2 ? 100 : kSlot;  // eager and rendezvous, alternating
    std::memset(static_cast<uint8_t*>(src->data()) + i * kSlot, static_cast<int>(i + 1), size);
    auto op = sender_->Send("a", At("b"), 50 + i, *src, i * kSlot, size);
    ASSERT_TRUE(op.ok());
    sends.push_back(*op);
  }
  // The first four fill the area; the rest wait.
  for (size_t i = 0; i < kSlots; ++i) {
    auto done = sender_->Wait(sends[i], 10000);
    ASSERT_TRUE(done.ok() && done->status.ok()) << i;
  }
  EXPECT_EQ(sender_->Wait(sends[kSlots], 300).status().code(), absl::StatusCode::kDeadlineExceeded);
  std::vector<Message> held;
  for (uint64_t i = 0; i < 8; ++i) {
    auto m = receiver_->Receive("b", 10000);
    ASSERT_TRUE(m.ok()) << "message " << i << ": " << m.status();
    EXPECT_EQ(m->tag, 50 + i) << "out of order";
    EXPECT_EQ(m->from, "node-a/a");
    EXPECT_EQ(m->length, i % 2 ? 100u : kSlot);
    EXPECT_EQ(m->data[0], i + 1);
    EXPECT_EQ(m->data[m->length - 1], i + 1);
    held.push_back(*m);
    if (held.size() == kSlots) {  // all slots taken: release them for the rest
      for (const Message& h : held) ASSERT_TRUE(receiver_->Release(h).ok());
      held.clear();
    }
  }
  for (size_t i = kSlots; i < sends.size(); ++i) {
    auto done = sender_->Wait(sends[i]);
    ASSERT_TRUE(done.ok()) << "send " << i << ": " << done.status();
    EXPECT_TRUE(done->status.ok()) << done->status;
  }
  EXPECT_EQ(receiver_->Receive("b", 200).status().code(), absl::StatusCode::kDeadlineExceeded);
  // A posted receive still takes priority over the area.
  auto dst = receiver_->AllocateHost(64);
  ASSERT_TRUE(dst.ok());
  auto recv = receiver_->PostRecv("b", 9, *dst, 0, 64);
  ASSERT_TRUE(recv.ok());
  ASSERT_TRUE(receiver_->PingDaemon().ok());  // the ring is FIFO: the receive is posted now
  auto send = sender_->Send("a", At("b"), 9, *src, 0, 64);
  ASSERT_TRUE(send.ok());
  auto posted = receiver_->Wait(*recv);
  ASSERT_TRUE(posted.ok()) << posted.status();
  EXPECT_TRUE(posted->status.ok()) << posted->status;
}

// A message of several parts (a header and tensors from two buffers) arrives
// as one, the parts back to back, small (eager) and large (rendezvous), into a
// posted buffer and into the receive area. Bad parts fail the whole send.
TEST_P(MessageTest, GatherSendsArriveAsOneMessage) {
  auto header = sender_->AllocateHost(4096);
  auto tensors = sender_->AllocateHost(4 << 20);
  auto dst = receiver_->AllocateHost(8 << 20);
  ASSERT_TRUE(header.ok() && tensors.ok() && dst.ok());
  std::memcpy(header->data(), "HDR:", 4);
  for (size_t i = 0; i < tensors->size(); ++i) {
    static_cast<uint8_t*>(tensors->data())[i] = static_cast<uint8_t>(i * 13 + 1);
  }
  for (size_t tensor : {size_t{100}, size_t{1} << 20}) {
    SCOPED_TRACE(tensor);
    const std::vector<View> parts = {
        {&*header, 0, 4}, {&*tensors, 0, tensor}, {&*tensors, 3 << 20, tensor}, {&*header, 1, 3}};
    std::vector<uint8_t> expected;
    for (const View& v : parts) {
      const auto* p = static_cast<const uint8_t*>(v.buffer->data()) + v.offset;
      expected.insert(expected.end(), p, p + v.length);
    }
    auto recv = receiver_->PostRecv("b", 5, *dst, 0, dst->size());
    auto send = sender_->Send("a", At("b"), 5, parts);
    ASSERT_TRUE(recv.ok() && send.ok());
    auto got = receiver_->Wait(*recv, 30000);
    ASSERT_TRUE(got.ok() && got->status.ok()) << (got.ok() ? got->status : got.status());
    ASSERT_EQ(got->length, expected.size());
    EXPECT_EQ(std::memcmp(dst->data(), expected.data(), expected.size()), 0);
    auto sent = sender_->Wait(*send, 30000);
    ASSERT_TRUE(sent.ok());
    EXPECT_TRUE(sent->status.ok()) << sent->status;
    EXPECT_EQ(sent->length, expected.size());
  }
  // Into the receive area.
  auto area = receiver_->AllocateHost(1 << 20);
  ASSERT_TRUE(area.ok());
  ASSERT_TRUE(receiver_->SetReceiveArea(*area, 64 << 10).ok());
  const std::vector<View> small = {{&*header, 0, 4}, {&*tensors, 0, 20000}};
  auto to_area = sender_->Send("a", At("b"), 6, small);
  ASSERT_TRUE(to_area.ok());
  auto m = receiver_->Receive("b", 10000);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->length, 20004u);
  EXPECT_EQ(std::memcmp(m->data, "HDR:", 4), 0);
  EXPECT_EQ(std::memcmp(m->data + 4, tensors->data(), 20000), 0);
  ASSERT_TRUE(receiver_->Release(*m).ok());
  EXPECT_TRUE(sender_->Wait(*to_area)->status.ok());
  // A part outside its buffer fails the whole send; the next one is fine.
  const std::vector<View> bad = {{&*header, 0, 4}, {&*tensors, 4 << 20, 1}};
  auto refused = sender_->Send("a", At("b"), 7, bad);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(sender_->Wait(*refused)->status.code(), absl::StatusCode::kInvalidArgument);
  std::vector<View> too_many(65, View{&*header, 0, 1});
  EXPECT_EQ(sender_->Send("a", At("b"), 7, too_many).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto after = sender_->Send("a", At("b"), 8, small);
  ASSERT_TRUE(after.ok());
  auto m2 = receiver_->Receive("b", 10000);
  ASSERT_TRUE(m2.ok()) << m2.status();
  EXPECT_EQ(m2->tag, 8u);
  EXPECT_TRUE(sender_->Wait(*after)->status.ok());
}

// `axonctl sessions` shows operations in flight, and messages and bytes each way.
TEST_P(MessageTest, SessionsShowTraffic) {
  auto src = sender_->AllocateHost(4096);
  auto dst = receiver_->AllocateHost(4096);
  ASSERT_TRUE(src.ok() && dst.ok());
  auto send = sender_->Send("a", At("b"), 3, *src, 0, 1000);
  ASSERT_TRUE(send.ok());
  EXPECT_TRUE(
      WaitFor([&] { return SessionOf(sending_daemon(), sender_->session_id()).in_flight() == 1; },
              std::chrono::seconds(5)));
  auto recv = receiver_->PostRecv("b", 3, *dst, 0, 4096);
  ASSERT_TRUE(recv.ok());
  ASSERT_TRUE(sender_->Wait(*send)->status.ok());
  ASSERT_TRUE(receiver_->Wait(*recv)->status.ok());
  const v1::SessionInfo out = SessionOf(sending_daemon(), sender_->session_id());
  EXPECT_EQ(out.in_flight(), 0u);
  EXPECT_EQ(out.messages_sent(), 1u);
  EXPECT_EQ(out.bytes_sent(), 1000u);
  const v1::SessionInfo in = SessionOf(receiving_daemon(), receiver_->session_id());
  EXPECT_EQ(in.messages_received(), 1u);
  EXPECT_EQ(in.bytes_received(), 1000u);
  EXPECT_THAT(sending_daemon().Ctl({"sessions"}).out, HasSubstr("1/0"));
}

// sessions.max_in_flight bounds what one session may leave pending.
TEST(SessionLimitTest, TooManyOperationsInFlight) {
  TempDir dir;
  Axond axond(dir, {.sets = {"sessions.max_in_flight=4"}});
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto client = Client::Connect({.socket_path = axond.socket()});
  auto other = Client::Connect({.socket_path = axond.socket()});
  ASSERT_TRUE(client.ok() && other.ok());
  ASSERT_TRUE((*client)->BindEndpoint("a").ok());
  ASSERT_TRUE((*other)->BindEndpoint("b").ok());
  auto buffer = (*client)->AllocateHost(64);
  auto landing = (*other)->AllocateHost(64);
  ASSERT_TRUE(buffer.ok() && landing.ok());
  std::vector<Operation> ops;
  for (int i = 0; i < 4; ++i) ops.push_back(*(*client)->Send("a", "b", 1, *buffer, 0, 8));
  auto fifth = (*client)->Send("a", "b", 1, *buffer, 0, 8);
  ASSERT_TRUE(fifth.ok());
  auto refused = (*client)->Wait(*fifth);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused->status.message(), HasSubstr("sessions.max_in_flight"));
  // The four waiting ones still complete once receives come.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE((*other)->PostRecv("b", 1, *landing, 0, 8).ok());
  for (auto op : ops) EXPECT_TRUE((*client)->Wait(op)->status.ok());
}

}  // namespace
}  // namespace axon::testing
