// Calls with typed tensors between real clients of real daemons, on one node
// and across two: every placement of a tensor (inline, apart, copied from
// unregistered memory, into the caller's own tensors), many calls in flight,
// deadlines, cancel, unknown methods, handler errors, async handlers, bad
// input.
#include "axon/call.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <numeric>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/support/pair_test.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

class CallTest : public ::testing::TestWithParam<bool>, protected Pair {
 protected:
  void SetUp() override {
    // Progress threads on both: futures and Then fire without waiting.
    StartPair(GetParam());
    if (HasFatalFailure()) return;
    server_ = std::make_unique<Server>(*receiver_, "b", ServerOptions{.concurrency = 4});
    server_->Handle("echo", [](const Request& r) -> absl::StatusOr<Reply> {
      return Reply{.header = absl::StrCat("re: ", r.header), .tensors = r.tensors};
    });
    server_->Handle("fail", [](const Request&) -> absl::StatusOr<Reply> {
      return absl::PermissionDeniedError("not for you");
    });
    server_->Handle("slow", [this](const Request& r) -> absl::StatusOr<Reply> {
      ++slow_started_;
      std::this_thread::sleep_for(std::chrono::milliseconds(r.header.empty() ? 800 : 2000));
      return Reply{.header = "late"};
    });
    server_->Handle("big", [this](const Request&) -> absl::StatusOr<Reply> {
      auto t = Tensor::Of(*big_, 0, dtype::kUInt8, {static_cast<int64_t>(big_->size())});
      if (!t.ok()) return t.status();
      return Reply{.tensors = {*t}};
    });
    server_->HandleAsync("later", [](const Request& r, Responder responder) {
      std::thread([header = std::string(r.header), responder = std::move(responder)]() mutable {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        responder.Send(Reply{.header = "async " + header});
      }).detach();
    });
    server_->HandleAsync("forgets", [](const Request&, Responder) {});
    server_->HandleAsync("keeps", [this](const Request&, Responder responder) {
      std::lock_guard<std::mutex> lock(kept_mu_);
      kept_responders_.push_back(std::move(responder));
    });
    server_->Handle("keeps-tensors", [this](const Request& r) -> absl::StatusOr<Reply> {
      std::lock_guard<std::mutex> lock(kept_mu_);
      kept_tensors_.insert(kept_tensors_.end(), r.tensors.begin(), r.tensors.end());
      return Reply{};
    });
    auto big = receiver_->AllocateHost(4 << 20);
    ASSERT_TRUE(big.ok());
    big_.emplace(*std::move(big));
    ASSERT_TRUE(server_->Start().ok());
    caller_ = std::make_unique<Caller>(*sender_, "a");
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<Caller> caller_;
  std::optional<HostBuffer> big_;
  std::atomic<int> slow_started_{0};
  std::mutex kept_mu_;
  std::vector<Responder> kept_responders_;  // guarded by kept_mu_
  std::vector<Tensor> kept_tensors_;        // guarded by kept_mu_
};

template <typename T>
void Fill(void* data, size_t count, T first) {
  auto* p = static_cast<T*>(data);
  for (size_t i = 0; i < count; ++i) p[i] = static_cast<T>(first + static_cast<T>(i));
}

TEST_P(CallTest, EchoesTypedTensorsWhereverTheyLie) {
  // A registered float32 tensor (inline), a registered 1 MiB uint8 tensor
  // (apart), unregistered bfloat16 and fp8 tensors (copied once), and an
  // empty int64 one.
  auto registered = sender_->AllocateHost(2 << 20);
  ASSERT_TRUE(registered.ok());
  Fill<float>(registered->data(), 4, 1.5f);
  Fill<uint8_t>(static_cast<uint8_t*>(registered->data()) + 4096, 1 << 20, 7);
  std::vector<uint16_t> bf16(64);
  Fill<uint16_t>(bf16.data(), bf16.size(), 100);
  std::vector<uint8_t> fp8(96, 0x3c);
  auto small = Tensor::Of(*registered, 0, dtype::kFloat32, {2, 2});
  auto large = Tensor::Of(*registered, 4096, dtype::kUInt8, {1 << 20});
  auto host = Tensor::Host(bf16.data(), dtype::kBFloat16, {8, 8});
  auto f8 = Tensor::Host(fp8.data(), dtype::kFloat8E4M3Fn, {96});
  auto empty = Tensor::Host(nullptr, dtype::kInt64, {0, 3});
  ASSERT_TRUE(small.ok() && large.ok() && host.ok() && f8.ok() && empty.ok());
  for (int round = 0; round < 3; ++round) {  // the pools are reused
    auto reply = caller_->Call(At("b"), "echo", "hello " + std::to_string(round),
                               {*small, *large, *host, *f8, *empty});
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->header, "re: hello " + std::to_string(round));
    ASSERT_EQ(reply->tensors.size(), 5u);
    const std::vector<Tensor>& t = reply->tensors;
    EXPECT_EQ(t[0].desc.dtype, dtype::kFloat32);
    EXPECT_THAT(t[0].desc.dims(), ::testing::ElementsAre(2, 2));
    EXPECT_EQ(t[0].span<float>()[3], 4.5f);
    EXPECT_EQ(t[1].desc.dtype, dtype::kUInt8);
    ASSERT_EQ(t[1].bytes(), 1u << 20);
    EXPECT_EQ(Checksum(t[1].data, t[1].bytes()),
              Checksum(static_cast<uint8_t*>(registered->data()) + 4096, 1 << 20));
    EXPECT_EQ(t[2].desc.dtype, dtype::kBFloat16);
    EXPECT_THAT(t[2].desc.dims(), ::testing::ElementsAre(8, 8));
    EXPECT_EQ(std::memcmp(t[2].data, bf16.data(), 128), 0);
    EXPECT_EQ(t[3].desc.dtype, dtype::kFloat8E4M3Fn);
    EXPECT_EQ(std::memcmp(t[3].data, fp8.data(), fp8.size()), 0);
    EXPECT_EQ(t[4].desc.dtype, dtype::kInt64);
    EXPECT_EQ(t[4].bytes(), 0u);
    for (const Tensor& x : t) EXPECT_FALSE(x.on_gpu());
    for (const Tensor& x : t) EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data) % 64, 0u);
  }
}

// Small host tensors at the head of a message are copied into its frame's
// block; the inline ones after a larger one are read in place. Either way,
// in any order, each arrives whole and aligned.
TEST_P(CallTest, SmallInlineTensorsAreCopiedAndTheRestReadInPlace) {
  auto registered = sender_->AllocateHost(64 << 10);
  ASSERT_TRUE(registered.ok());
  Fill<uint8_t>(static_cast<uint8_t*>(registered->data()), 64 << 10, 3);
  std::vector<uint8_t> loose(100, 0x5a);
  auto at = [&](size_t offset, int64_t bytes) {
    return *Tensor::Of(*registered, offset, dtype::kUInt8, {bytes});
  };
  const Tensor unregistered = *Tensor::Host(loose.data(), dtype::kUInt8, {100});
  const std::vector<std::vector<Tensor>> orders = {
      {at(0, 16), at(4096, 3000), at(8192, 16), unregistered, at(12288, 2048)},
      {at(4096, 3000), at(0, 2048), unregistered},
      {at(0, 2048), at(4096, 2049), at(8192, 1)},
  };
  for (const std::vector<Tensor>& tensors : orders) {
    auto reply = caller_->Call(At("b"), "echo", "", tensors);
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(reply->tensors.size(), tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const Tensor& got = reply->tensors[i];
      ASSERT_EQ(got.bytes(), tensors[i].bytes()) << i;
      EXPECT_EQ(std::memcmp(got.data, tensors[i].data, got.bytes()), 0) << i;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data) % 64, 0u) << i;
    }
  }
}

TEST_P(CallTest, ReplyLandsInTheCallersOwnTensors) {
  auto in = sender_->AllocateHost(1 << 20);
  auto out = sender_->AllocateHost(1 << 20);
  ASSERT_TRUE(in.ok() && out.ok());
  Fill<int32_t>(in->data(), 1 << 18, 11);
  std::memset(out->data(), 0, 1 << 20);
  auto request = Tensor::Of(*in, 0, dtype::kInt32, {1 << 18});
  auto into = Tensor::Of(*out, 0, dtype::kInt32, {1 << 18});
  ASSERT_TRUE(request.ok() && into.ok());
  const Tensor into_list[] = {*into};
  auto reply = caller_->Call(At("b"), "echo", "", {*request}, {.reply_into = into_list});
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_EQ(reply->tensors.size(), 1u);
  EXPECT_EQ(reply->tensors[0].data, out->data());  // written in place
  EXPECT_EQ(std::memcmp(out->data(), in->data(), 1 << 20), 0);
  // Too small a tensor to reply into: RESOURCE_EXHAUSTED, not a truncation.
  auto tiny = Tensor::Of(*out, 0, dtype::kInt32, {16});
  const Tensor tiny_list[] = {*tiny};
  auto refused = caller_->Call(At("b"), "echo", "", {*request}, {.reply_into = tiny_list});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
}

TEST_P(CallTest, SmallReplyIntoTensorsComeInsideTheReplyAndLandInPlace) {
  // A small host tensor (copied out of the reply message), one past
  // inline_bytes (written in place by the daemon), and a third with no
  // reply_into (pool memory), in one reply.
  auto in = sender_->AllocateHost(64 << 10);
  auto out = sender_->AllocateHost(64 << 10);
  ASSERT_TRUE(in.ok() && out.ok());
  Fill<uint8_t>(in->data(), 64 << 10, 3);
  std::memset(out->data(), 0, 64 << 10);
  auto* o = static_cast<uint8_t*>(out->data());
  auto small = Tensor::Of(*in, 0, dtype::kUInt16, {32});
  auto large = Tensor::Of(*in, 4096, dtype::kUInt8, {32 << 10});
  auto third = Tensor::Of(*in, 40960, dtype::kUInt8, {100});
  auto small_into = Tensor::Of(*out, 0, dtype::kUInt8, {256});  // room to spare
  auto large_into = Tensor::Of(*out, 4096, dtype::kUInt8, {32 << 10});
  ASSERT_TRUE(small.ok() && large.ok() && third.ok() && small_into.ok() && large_into.ok());
  const Tensor into[] = {*small_into, *large_into};
  for (int round = 0; round < 2; ++round) {
    auto reply = caller_->Call(At("b"), "echo", "", {*small, *large, *third},
                               {.reply_into = into, .inline_bytes = 16 << 10});
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(reply->tensors.size(), 3u);
    EXPECT_EQ(reply->tensors[0].data, o);
    EXPECT_EQ(reply->tensors[0].desc.dtype, dtype::kUInt16);  // the reply's type and shape
    EXPECT_THAT(reply->tensors[0].desc.dims(), ::testing::ElementsAre(32));
    EXPECT_EQ(std::memcmp(o, in->data(), 64), 0);
    EXPECT_EQ(o[64], 0);  // nothing past the reply tensor's bytes
    EXPECT_EQ(reply->tensors[1].data, o + 4096);
    EXPECT_EQ(std::memcmp(o + 4096, static_cast<uint8_t*>(in->data()) + 4096, 32 << 10), 0);
    EXPECT_NE(reply->tensors[2].owner, nullptr);  // pool memory
    EXPECT_EQ(std::memcmp(reply->tensors[2].data, static_cast<uint8_t*>(in->data()) + 40960, 100),
              0);
    std::memset(out->data(), 0, 64 << 10);
  }
  // A small one that is too small: RESOURCE_EXHAUSTED.
  auto tiny = Tensor::Of(*out, 0, dtype::kUInt8, {8});
  const Tensor tiny_list[] = {*tiny};
  auto refused = caller_->Call(At("b"), "echo", "", {*small}, {.reply_into = tiny_list});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("reply_into[0] holds 8"));
  // More than kMaxReplyInto: refused before anything is sent.
  std::vector<Tensor> many(CallOptions::kMaxReplyInto + 1, *small_into);
  auto too_many = caller_->CallAsync(At("b"), "echo", "", {}, {.reply_into = many});
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(CallTest, TenThousandCallsFiveHundredInFlightEachGetsItsReply) {
  constexpr int kCalls = 10000, kWindow = 500;
  auto buffer = sender_->AllocateHost(kWindow * 64);
  ASSERT_TRUE(buffer.ok());
  std::deque<std::pair<int, PendingCall>> flying;
  int next = 0, done = 0;
  while (done < kCalls) {
    while (next < kCalls && flying.size() < kWindow) {
      const size_t slot = static_cast<size_t>(next % kWindow);
      auto* p = static_cast<int64_t*>(buffer->data()) + slot * 8;
      Fill<int64_t>(p, 8, next);
      auto t = Tensor::Of(*buffer, slot * 64, dtype::kInt64, {8});
      ASSERT_TRUE(t.ok());
      auto call =
          caller_->CallAsync(At("b"), "echo", std::to_string(next), {*t}, {.timeout_ms = 60000});
      ASSERT_TRUE(call.ok()) << call.status();
      flying.emplace_back(next++, *call);
    }
    auto [index, call] = flying.front();
    flying.pop_front();
    auto reply = call.Wait();
    ASSERT_TRUE(reply.ok()) << "call " << index << ": " << reply.status();
    ASSERT_EQ(reply->header, "re: " + std::to_string(index));
    ASSERT_EQ(reply->tensors.size(), 1u);
    ASSERT_EQ(reply->tensors[0].span<int64_t>()[7], index + 7);
    ++done;
  }
  // A reply is counted once it has left, which may be after it arrived.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = server_->Stats();
        return s.size() == 1 && s[0].calls == static_cast<uint64_t>(kCalls);
      },
      std::chrono::seconds(10)));
  const auto stats = server_->Stats();
  EXPECT_EQ(stats[0].method, "echo");
  EXPECT_EQ(stats[0].calls, static_cast<uint64_t>(kCalls));
  EXPECT_EQ(stats[0].errors, 0u);
  EXPECT_GT(stats[0].p99_us, 0);
  // Operators see the same through the daemon, reported about once a second.
  EXPECT_TRUE(WaitFor(
      [&] {
        const std::string table = receiving_daemon().Ctl({"calls"}).out;
        return table.find("echo") != std::string::npos &&
               table.find(" 10000 ") != std::string::npos;
      },
      std::chrono::seconds(10)))
      << receiving_daemon().Ctl({"calls"}).out;
}

TEST_P(CallTest, ThenAndFutureFireWithoutAWaiter) {
  std::promise<std::string> got;
  auto call = caller_->CallAsync(At("b"), "echo", "then", {});
  ASSERT_TRUE(call.ok());
  call->Then([&got](absl::StatusOr<Reply> r) { got.set_value(r.ok() ? r->header : "error"); });
  auto future = caller_->CallAsync(At("b"), "later", "f", {})->Future();
  // Nobody waits on the calls: this thread drives the client meanwhile.
  auto header = got.get_future();
  while (header.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready ||
         future.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
    (void)sender_->Progress(10);
  }
  EXPECT_EQ(header.get(), "re: then");
  auto r = future.get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header, "async f");
}

TEST_P(CallTest, ASlowHandlerDoesNotStallTheOthers) {
  auto slow = caller_->CallAsync(At("b"), "slow", "long", {});
  ASSERT_TRUE(slow.ok());
  ASSERT_TRUE(WaitFor([&] { return slow_started_ > 0; }, std::chrono::seconds(10)));
  const absl::Time start = absl::Now();
  for (int i = 0; i < 50; ++i) {
    auto reply = caller_->Call(At("b"), "echo", "quick", {});
    ASSERT_TRUE(reply.ok()) << reply.status();
  }
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
  EXPECT_FALSE(slow->done());
  EXPECT_EQ(slow->Wait()->header, "late");
}

TEST_P(CallTest, ABurstBehindASlowHandlerIsServedByTheOtherWorkers) {
  // A quick call first, so that workers spin when the burst comes (each
  // spinner takes one call without being woken); the slow call goes to
  // one of them and the echoes must not wait for it: the workers asleep
  // are woken for what the spinners cannot take.
  for (int round = 0; round < 4; ++round) {
    ASSERT_TRUE(caller_->Call(At("b"), "echo", "warm", {}).ok());
    const int started = slow_started_;
    auto slow = caller_->CallAsync(At("b"), "slow", "", {});
    ASSERT_TRUE(slow.ok());
    std::vector<PendingCall> echoes;
    for (int i = 0; i < 3; ++i) {
      auto echo = caller_->CallAsync(At("b"), "echo", "burst", {});
      ASSERT_TRUE(echo.ok());
      echoes.push_back(*echo);
    }
    const absl::Time start = absl::Now();
    for (const PendingCall& echo : echoes) {
      auto reply = echo.Wait();
      ASSERT_TRUE(reply.ok()) << reply.status();
      EXPECT_EQ(reply->header, "re: burst");
    }
    // The slow handler sleeps 800 ms; served beside it, the echoes take
    // milliseconds.
    EXPECT_LT(absl::Now() - start, absl::Milliseconds(500)) << "round " << round;
    EXPECT_EQ(slow->Wait()->header, "late");
    EXPECT_EQ(slow_started_, started + 1);
  }
}

TEST_P(CallTest, DeadlinesAndCancel) {
  const absl::Time start = absl::Now();
  auto late = caller_->Call(At("b"), "slow", "", {}, {.timeout_ms = 200});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));

  auto call = caller_->CallAsync(At("b"), "slow", "", {}, {.timeout_ms = 10000});
  ASSERT_TRUE(call.ok());
  const absl::Time cancelled = absl::Now();
  call->Cancel();
  EXPECT_EQ(call->Wait().status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - cancelled, absl::Milliseconds(500));
  // The server goes on; the dropped replies are counted once the handlers end.
  auto reply = caller_->Call(At("b"), "echo", "after", {});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const MethodStats& m : server_->Stats()) {
          if (m.method == "slow" && m.calls == 2) return m.dropped_replies == 2;
        }
        return false;
      },
      std::chrono::seconds(10)));
}

// A call's request goes as a quiet send (the daemon completes it only if it
// fails; the reply says it arrived). However the call ends, answered, failed
// by the handler, timed out or cancelled after the request arrived, or
// refused for want of an endpoint, nothing stays in flight on the caller's
// session.
TEST_P(CallTest, QuietRequestsLeaveNothingInFlight) {
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(caller_->Call(At("b"), "echo", "x", {}).ok());
  EXPECT_EQ(caller_->Call(At("b"), "fail", "", {}).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(caller_->Call(At("b"), "slow", "", {}, {.timeout_ms = 100}).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  auto call = caller_->CallAsync(At("b"), "slow", "", {}, {.timeout_ms = 10000});
  ASSERT_TRUE(call.ok());
  ASSERT_TRUE(WaitFor([&] { return slow_started_ == 2; }, std::chrono::seconds(5)));
  call->Cancel();
  EXPECT_EQ(call->Wait().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(caller_->Call(At("nobody"), "echo", "", {}, {.timeout_ms = 5000}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(
      WaitFor([&] { return SessionOf(sending_daemon(), sender_->session_id()).in_flight() == 0; },
              std::chrono::seconds(5)))
      << SessionOf(sending_daemon(), sender_->session_id()).in_flight();
}

TEST_P(CallTest, UnknownMethodsAndHandlerErrorsComeBackAsStatuses) {
  auto unknown = caller_->Call(At("b"), "nope", "", {});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(unknown.status().message(), HasSubstr("nope"));
  auto failed = caller_->Call(At("b"), "fail", "", {});
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(failed.status().message(), "not for you");
  auto later = caller_->Call(At("b"), "later", "x", {});
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->header, "async x");
  auto forgot = caller_->Call(At("b"), "forgets", "", {});
  EXPECT_EQ(forgot.status().code(), absl::StatusCode::kInternal);
  auto nobody = caller_->Call(At("nobody"), "echo", "", {});
  EXPECT_EQ(nobody.status().code(), absl::StatusCode::kNotFound) << nobody.status();
  // A call is counted once its reply has left the server, which may be
  // after the caller has it.
  auto errors_of = [&](const std::string& method) {
    for (const MethodStats& m : server_->Stats()) {
      if (m.method == method) return m.errors;
    }
    return uint64_t{0};
  };
  EXPECT_TRUE(WaitFor([&] { return errors_of("(unknown)") == 1 && errors_of("fail") == 1; },
                      std::chrono::seconds(10)))
      << errors_of("(unknown)") << " " << errors_of("fail");
}

// An async handler that still holds its Responder when the server stops:
// Stop answers its caller UNAVAILABLE, and the Responder's own answer,
// later, after the server's client is gone, is dropped without touching it.
TEST_P(CallTest, AResponderKeptPastStopIsAnsweredByStop) {
  auto call = caller_->CallAsync(At("b"), "keeps", "", {}, {.timeout_ms = 30000});
  ASSERT_TRUE(call.ok()) << call.status();
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(kept_mu_);
        return !kept_responders_.empty();
      },
      std::chrono::seconds(10)));
  const auto stop_started = absl::Now();
  server_->Stop();
  auto reply = call->Wait();
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("stopped serving"));
  EXPECT_LT(absl::Now() - stop_started, absl::Seconds(10));
  server_.reset();
  receiver_.reset();
  kept_responders_[0].Send(Reply{.header = "too late"});
  kept_responders_.clear();
}

// Inline request tensors a handler keeps stay readable past its reply,
// and past the server and its client: they hold their receive-area slot.
TEST_P(CallTest, KeptRequestTensorsOutliveTheServersClient) {
  std::vector<int32_t> values(64);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<int32_t>(i * 3);
  auto t = Tensor::Host(values.data(), dtype::kInt32, {64});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(caller_->Call(At("b"), "keeps-tensors", "", {*t}).ok());
  server_->Stop();
  server_.reset();
  receiver_.reset();
  std::lock_guard<std::mutex> lock(kept_mu_);
  ASSERT_EQ(kept_tensors_.size(), 1u);
  auto kept = kept_tensors_[0].span<int32_t>();
  ASSERT_EQ(kept.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(kept[i], values[i]) << i;
  kept_tensors_.clear();
}

TEST_P(CallTest, BadInputIsRefusedWithAClearStatus) {
  auto invalid = [](const absl::Status& st, const std::string& says) {
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_THAT(st.message(), HasSubstr(says));
  };
  invalid(caller_->Call(At("b"), std::string(200, 'm'), "", {}).status(), "method name");
  invalid(caller_->Call(At("b"), "", "", {}).status(), "method name");
  invalid(caller_->Call(At("b"), "echo", std::string(65 * 1024, 'h'), {}).status(), "header");
  std::vector<float> data(16);
  auto t = Tensor::Host(data.data(), dtype::kFloat32, {4, 4});
  ASSERT_TRUE(t.ok());
  std::vector<Tensor> many(129, *t);
  invalid(caller_->Call(At("b"), "echo", "", many).status(), "at most 128 tensors");
  Tensor strided = *t;
  strided.desc.has_strides = true;
  strided.desc.strides = {1, 4};
  invalid(caller_->Call(At("b"), "echo", "", {strided}).status(), "contiguous");
  Tensor unknown = *t;
  unknown.desc.dtype = DType{static_cast<DTypeCode>(3), 8};
  invalid(caller_->Call(At("b"), "echo", "", {unknown}).status(), "dtype");
  Tensor huge = *t;
  huge.desc.shape = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_FALSE(caller_->Call(At("b"), "echo", "", {huge}).ok());
  Tensor negative = *t;
  negative.desc.shape = {-4, 4};
  invalid(caller_->Call(At("b"), "echo", "", {negative}).status(), "negative");
  auto in_buffer = sender_->AllocateHost(4096);
  ASSERT_TRUE(in_buffer.ok());
  auto outside = Tensor::Of(*in_buffer, 4000, dtype::kFloat32, {64});
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kInvalidArgument);
  // A reply larger than the caller allows.
  auto big = caller_->Call(At("b"), "big", "", {}, {.max_reply_bytes = 1 << 20});
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted) << big.status();
  auto fine = caller_->Call(At("b"), "big", "", {});
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->tensors.at(0).bytes(), 4u << 20);
}

INSTANTIATE_TEST_SUITE_P(Paths, CallTest, ::testing::Bool(), PathName);

}  // namespace
}  // namespace axon::testing
