// Call/Serve on top of messages, local and remote: a request with a header
// and tensors and its reply, unknown methods, handler errors, and deadlines.
#include "axon/call.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/support/pair_test.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

class CallTest : public PairTest {
 protected:
  void SetUp() override {
    PairTest::SetUp();
    if (HasFatalFailure()) return;
    auto area = receiver_->AllocateHost(8 << 20);
    ASSERT_TRUE(area.ok());
    area_.emplace(*std::move(area));
    ASSERT_TRUE(receiver_->SetReceiveArea(*area_, 1 << 20).ok());
    server_ = std::make_unique<Server>(*receiver_, "b");
    server_->Handle("echo", [](const Request& r) -> absl::StatusOr<Reply> {
      Reply reply{.header = "re: " + r.header};
      for (auto t : r.tensors) reply.tensors.emplace_back(t.rbegin(), t.rend());  // reversed
      return reply;
    });
    server_->Handle("fail", [](const Request&) -> absl::StatusOr<Reply> {
      return absl::PermissionDeniedError("not for you");
    });
    server_->Handle("slow", [](const Request&) -> absl::StatusOr<Reply> {
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      return Reply{.header = "late"};
    });
  }
  void StartServing() {
    serving_ = std::thread([this] {
      while (!stop_) {
        auto st = server_->ServeOnce(50);
        if (!st.ok() && st.code() != absl::StatusCode::kDeadlineExceeded) errors_++;
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    if (serving_.joinable()) serving_.join();
  }

  std::optional<HostBuffer> area_;
  std::unique_ptr<Server> server_;
  std::thread serving_;
  std::atomic<bool> stop_{false};
  std::atomic<int> errors_{0};
};

INSTANTIATE_TEST_SUITE_P(Path, CallTest, ::testing::Values(false, true), PathName);

TEST_P(CallTest, RequestAndReplyWithTensors) {
  StartServing();
  Caller caller(*sender_, "a");
  std::vector<uint8_t> small(100), large(300 << 10);
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < small.size(); ++i) small[i] = static_cast<uint8_t>(i);
  for (int round = 0; round < 20; ++round) {
    auto reply = caller.Call(At("b"), "echo", "hello " + std::to_string(round),
                             {{small.data(), small.size()}, {large.data(), large.size()}});
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->header, "re: hello " + std::to_string(round));
    ASSERT_EQ(reply->tensors.size(), 2u);
    EXPECT_EQ(reply->tensors[0], std::vector<uint8_t>(small.rbegin(), small.rend()));
    EXPECT_EQ(Checksum(reply->tensors[1].data(), reply->tensors[1].size()),
              Checksum(std::vector<uint8_t>(large.rbegin(), large.rend()).data(), large.size()));
  }
  EXPECT_EQ(errors_, 0);
}

TEST_P(CallTest, ErrorsComeBackAsStatuses) {
  StartServing();
  Caller caller(*sender_, "a");
  auto unknown = caller.Call(At("b"), "nope", "", {});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnimplemented) << unknown.status();
  EXPECT_THAT(unknown.status().message(), HasSubstr("no method 'nope'"));
  auto failed = caller.Call(At("b"), "fail", "", {});
  EXPECT_EQ(failed.status(), absl::PermissionDeniedError("not for you"));
  auto nobody = caller.Call(At("nobody"), "echo", "", {});
  EXPECT_EQ(nobody.status().code(), absl::StatusCode::kNotFound) << nobody.status();
  // A reply larger than the caller allows.
  std::vector<uint8_t> big(2 << 20 >> 2);
  auto too_big =
      caller.Call(At("b"), "echo", "", {{big.data(), big.size()}}, {.max_reply_bytes = 1024});
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kResourceExhausted) << too_big.status();
}

TEST_P(CallTest, DeadlinesHold) {
  StartServing();
  Caller caller(*sender_, "a");
  const auto start = std::chrono::steady_clock::now();
  auto late = caller.Call(At("b"), "slow", "", {}, {.timeout_ms = 200});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  // No server at all: the request waits in the area's place... until the deadline.
  stop_ = true;
  serving_.join();
  auto unanswered = caller.Call(At("b"), "echo", "", {}, {.timeout_ms = 300});
  EXPECT_EQ(unanswered.status().code(), absl::StatusCode::kDeadlineExceeded);
  // After the late reply was refused, calls work again.
  stop_ = false;
  StartServing();
  EXPECT_TRUE(caller.Call(At("b"), "echo", "again", {}).ok());
}

}  // namespace
}  // namespace axon::testing
