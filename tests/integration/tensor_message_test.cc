// Messages of tensors (Client::SendTensors, Client::PostRecvInto) through
// real daemons, local and remote: registered tensors read in place, plain
// host memory copied once (so the caller may reuse it at once), several
// tensors in one message, and the refusals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <numeric>
#include <thread>
#include <vector>

#include "axon/client.h"
#include "axon/tensor.h"
#include "tests/support/pair_test.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

class TensorMessageTest : public PairTest {
 protected:
  // `done` as a future: what SendTensors and PostRecvInto take.
  struct Waiter {
    std::shared_ptr<std::promise<Completed>> promise = std::make_shared<std::promise<Completed>>();
    std::function<void(const Completed&)> done() {
      return [p = promise](const Completed& c) { p->set_value(c); };
    }
    Completed get() {
      auto f = promise->get_future();
      EXPECT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready);
      return f.get();
    }
  };
};

TEST_P(TensorMessageTest, SeveralTensorsLandBackToBack) {
  auto into_buffer = receiver_->AllocateHost(4096);
  ASSERT_TRUE(into_buffer.ok());
  auto into = Tensor::Of(*into_buffer, 0, dtype::kInt32, {100});
  ASSERT_TRUE(into.ok());
  Waiter received, sent;
  ASSERT_TRUE(receiver_->PostRecvInto("b", 7, *into, {}, received.done()).ok());

  auto registered = sender_->AllocateHost(1024);  // read in place
  ASSERT_TRUE(registered.ok());
  auto* first = static_cast<int32_t*>(registered->data());
  std::iota(first, first + 60, 0);
  std::vector<int32_t> plain(40);  // copied once, at the call
  std::iota(plain.begin(), plain.end(), 60);
  auto a = Tensor::Of(*registered, 0, dtype::kInt32, {60});
  auto b = Tensor::Host(plain.data(), dtype::kInt32, {40});
  ASSERT_TRUE(a.ok() && b.ok());
  auto op = sender_->SendTensors("a", At("b"), 7, {*a, *b}, {}, sent.done());
  ASSERT_TRUE(op.ok()) << op.status();
  std::fill(plain.begin(), plain.end(), -1);  // the copy is already made

  const Completed s = sent.get(), r = received.get();
  EXPECT_TRUE(s.status.ok()) << s.status;
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.length, 400u);
  EXPECT_EQ(r.tag, 7u);
  const auto* got = static_cast<const int32_t*>(into->data);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], i) << i;
}

TEST_P(TensorMessageTest, ReceivesLandInRegisteredOrGpuMemoryOnly) {
  std::vector<float> plain(16);
  auto t = Tensor::Host(plain.data(), dtype::kFloat32, {16});
  ASSERT_TRUE(t.ok());
  auto op = receiver_->PostRecvInto("b", 1, *t, {}, nullptr);
  EXPECT_EQ(op.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(op.status().message(), HasSubstr("registered memory"));
}

TEST_P(TensorMessageTest, FailuresReachTheCallback) {
  Waiter sent;
  std::vector<uint8_t> bytes(8);
  auto t = Tensor::Host(bytes.data(), dtype::kUInt8, {8});
  ASSERT_TRUE(t.ok());
  auto op = sender_->SendTensors("a", At("nobody"), 1, {*t}, {.timeout_ms = 5000}, sent.done());
  if (op.ok()) {
    EXPECT_EQ(sent.get().status.code(), absl::StatusCode::kNotFound);
  } else {
    EXPECT_EQ(op.status().code(), absl::StatusCode::kNotFound);
  }
}

// Client::Hold: an unposted message as a tensor over its receive-area slot,
// which goes back to the daemon only when the tensor's last copy is gone.
TEST_P(TensorMessageTest, AHeldMessageKeepsItsSlotUntilItsTensorGoes) {
  ASSERT_TRUE(receiver_->UseReceiveArea(4096, 2).ok());
  auto Send = [&](uint8_t fill) {
    std::vector<uint8_t> bytes(100, fill);
    auto t = Tensor::Host(bytes.data(), dtype::kUInt8, {100});
    EXPECT_TRUE(t.ok());
    auto sent = std::make_shared<Waiter>();
    auto op = sender_->SendTensors("a", At("b"), fill, {*t}, {}, sent->done());
    EXPECT_TRUE(op.ok()) << op.status();
    return sent;
  };
  auto first = Send(1);
  auto second = Send(2);
  auto third = Send(3);  // both slots are held: it waits for one
  std::vector<Received> held;
  for (int i = 0; i < 2; ++i) {
    auto message = receiver_->Receive("b");
    ASSERT_TRUE(message.ok()) << message.status();
    held.push_back(receiver_->Hold(*message));
  }
  EXPECT_TRUE(first->get().status.ok());
  EXPECT_TRUE(second->get().status.ok());
  EXPECT_EQ(receiver_->Receive("b", 300).status().code(), absl::StatusCode::kDeadlineExceeded);

  ASSERT_EQ(held[0].tensor.bytes(), 100u);
  EXPECT_EQ(held[0].tag, 1u);
  EXPECT_EQ(held[0].endpoint, "b");
  EXPECT_THAT(held[0].from, ::testing::EndsWith("/a"));
  EXPECT_EQ(held[0].tensor.span<uint8_t>()[99], 1);
  EXPECT_NE(held[0].tensor.buffer, nullptr);  // libaxon's area: sent again in place
  // A copy of the tensor keeps the slot: the third still waits.
  Tensor kept = held[0].tensor;
  held.erase(held.begin());
  EXPECT_EQ(receiver_->Receive("b", 300).status().code(), absl::StatusCode::kDeadlineExceeded);
  kept = Tensor{};
  auto last = receiver_->Receive("b");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->tag, 3u);
  EXPECT_TRUE(third->get().status.ok());
  EXPECT_EQ(held[0].tensor.span<uint8_t>()[0], 2);  // untouched by the third
  ASSERT_TRUE(receiver_->Release(*last).ok());
}

TEST_P(TensorMessageTest, AHeldMessageOutlivesItsClient) {
  ASSERT_TRUE(receiver_->UseReceiveArea(4096, 4).ok());
  std::vector<uint8_t> bytes(64, 9);
  auto t = Tensor::Host(bytes.data(), dtype::kUInt8, {64});
  ASSERT_TRUE(t.ok());
  Waiter sent;
  ASSERT_TRUE(sender_->SendTensors("a", At("b"), 5, {*t}, {}, sent.done()).ok());
  auto message = receiver_->Receive("b");
  ASSERT_TRUE(message.ok()) << message.status();
  Received held = receiver_->Hold(*message);
  receiver_.reset();  // the mapping stays with the tensor
  EXPECT_EQ(held.tensor.span<uint8_t>()[63], 9);
  EXPECT_TRUE(sent.get().status.ok());
}

TEST_P(TensorMessageTest, AMessageSentBeforeTheAreaLandsOnceItIsThere) {
  std::vector<uint8_t> bytes(400, 6);
  auto t = Tensor::Host(bytes.data(), dtype::kUInt8, {400});
  ASSERT_TRUE(t.ok());
  Waiter sent;
  ASSERT_TRUE(sender_->SendTensors("a", At("b"), 2, {*t}, {}, sent.done()).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // it waits at the receiver
  ASSERT_TRUE(receiver_->UseReceiveArea(4096, 2).ok());
  auto message = receiver_->Receive("b");
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(message->length, 400u);
  EXPECT_TRUE(sent.get().status.ok());
  ASSERT_TRUE(receiver_->Release(*message).ok());
}

INSTANTIATE_TEST_SUITE_P(Paths, TensorMessageTest, ::testing::Bool(), PathName);

}  // namespace
}  // namespace axon::testing
