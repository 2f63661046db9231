// Messages of tensors (Client::SendTensors, Client::PostRecvInto) through
// real daemons, local and remote: registered tensors read in place, plain
// host memory copied once (so the caller may reuse it at once), several
// tensors in one message, and the refusals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <numeric>
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

INSTANTIATE_TEST_SUITE_P(Paths, TensorMessageTest, ::testing::Bool(), PathName);

}  // namespace
}  // namespace axon::testing
