// Messages between endpoints on one node, through real daemons and the
// shared-memory rings: sizes with checksums, back-pressure, order, and the
// failure statuses.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "axon/client.h"
#include "tests/support/axond.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

uint64_t Checksum(const void* data, size_t size) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

class MessageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    axond_ = std::make_unique<Axond>(dir_);
    ASSERT_TRUE(axond_->WaitReady()) << axond_->process().Log();
    auto a = Client::Connect({.socket_path = axond_->socket(), .client_name = "sender"});
    auto b = Client::Connect({.socket_path = axond_->socket(), .client_name = "receiver"});
    ASSERT_TRUE(a.ok() && b.ok());
    sender_ = *std::move(a);
    receiver_ = *std::move(b);
    ASSERT_TRUE(sender_->BindEndpoint("a").ok());
    ASSERT_TRUE(receiver_->BindEndpoint("b").ok());
  }
  TempDir dir_;
  std::unique_ptr<Axond> axond_;
  std::unique_ptr<Client> sender_, receiver_;
};

TEST_F(MessageTest, EverySizeArrivesIntact) {
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
                      size_t{1} << 20, kMax}) {
    SCOPED_TRACE(size);
    std::memset(dst->data(), 0, std::min(kMax, size + 64));
    const size_t offset = size == kMax ? 0 : 3;  // unaligned where there is room
    auto recv = receiver_->PostRecv("b", size, *dst, 0, kMax);
    auto send = sender_->Send("a", "node-a/b", size, *src, offset, size);
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

TEST_F(MessageTest, ASendWaitsForItsReceive) {
  auto src = sender_->AllocateHost(4096);
  auto dst = receiver_->AllocateHost(4096);
  ASSERT_TRUE(src.ok() && dst.ok());
  std::memset(src->data(), 0x7e, 4096);
  auto send = sender_->Send("a", "b", 9, *src, 0, 4096);
  ASSERT_TRUE(send.ok());
  // No receive posted: back-pressure, not a drop.
  EXPECT_EQ(sender_->Wait(*send, 200).status().code(), absl::StatusCode::kDeadlineExceeded);
  auto recv = receiver_->PostRecv("b", 9, *dst, 0, 4096);
  ASSERT_TRUE(recv.ok());
  EXPECT_TRUE(sender_->Wait(*send)->status.ok());
  EXPECT_TRUE(receiver_->Wait(*recv)->status.ok());
  EXPECT_EQ(static_cast<uint8_t*>(dst->data())[4095], 0x7e);
}

TEST_F(MessageTest, OrderIsKeptAndNothingIsLost) {
  constexpr size_t kMessages = 5000;
  auto src = sender_->AllocateHost(kMessages * 8);
  auto dst = receiver_->AllocateHost(kMessages * 8);
  ASSERT_TRUE(src.ok() && dst.ok());
  std::vector<Operation> sends, recvs;
  for (uint64_t i = 0; i < kMessages; ++i) {
    std::memcpy(static_cast<uint8_t*>(src->data()) + i * 8, &i, 8);
    auto send = sender_->Send("a", "b", 1, *src, i * 8, 8);
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

TEST_F(MessageTest, FailuresSayWhy) {
  auto src = sender_->AllocateHost(4096);
  auto small = receiver_->AllocateHost(16);
  ASSERT_TRUE(src.ok() && small.ok());
  auto status_of = [](Client& c, absl::StatusOr<Operation> op) {
    EXPECT_TRUE(op.ok());
    return c.Wait(*op)->status.code();
  };
  EXPECT_EQ(status_of(*sender_, sender_->Send("a", "nobody", 1, *src, 0, 10)),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(status_of(*sender_, sender_->Send("a", "b", 1, *src, 4000, 200)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status_of(*sender_, sender_->Send("a", "b", 1, *src, UINT64_MAX, 2)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status_of(*sender_, sender_->Send("b", "b", 1, *src, 0, 8)),
            absl::StatusCode::kFailedPrecondition);  // "b" is not the sender's endpoint
  EXPECT_EQ(status_of(*sender_, sender_->Send("a", "other-node/b", 1, *src, 0, 8)),
            absl::StatusCode::kUnimplemented);
  // A message larger than the posted buffer: both sides are told.
  auto recv = receiver_->PostRecv("b", 2, *small, 0, 16);
  auto send = sender_->Send("a", "b", 2, *src, 0, 100);
  ASSERT_TRUE(recv.ok() && send.ok());
  EXPECT_EQ(sender_->Wait(*send)->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(receiver_->Wait(*recv)->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(axond_->Ctl({"health"}).exit_code, 0);
}

TEST_F(MessageTest, ASendToAReceiverThatLeavesFails) {
  auto src = sender_->AllocateHost(4096);
  ASSERT_TRUE(src.ok());
  auto send = sender_->Send("a", "b", 5, *src, 0, 64);
  ASSERT_TRUE(send.ok());
  EXPECT_EQ(sender_->Wait(*send, 200).status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(receiver_->Detach().ok());
  auto done = sender_->Wait(*send, 10000);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace axon::testing
