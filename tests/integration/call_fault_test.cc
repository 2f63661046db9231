// Calls whose caller or server is killed mid-call: nothing hangs, the
// server counts the reply it could not deliver, and the daemons give back
// every fd and mapping the dead process held.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>

#include "axon/call.h"
#include "tests/support/pair_test.h"
#include "tests/support/process.h"

namespace axon::testing {
namespace {

class CallFaultTest : public ::testing::TestWithParam<bool>, protected Pair {
 protected:
  void SetUp() override { StartPair(GetParam()); }
};

TEST_P(CallFaultTest, KilledCallerLeavesNothingBehind) {
  // The server here; the caller a process on the sending node.
  Server server(*receiver_, "b", {.concurrency = 2});
  std::atomic<int> started{0};
  server.Handle("slow", [&](const Request&) -> absl::StatusOr<Reply> {
    ++started;
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return Reply{.header = "too late"};
  });
  server.Handle("echo", [](const Request& r) -> absl::StatusOr<Reply> {
    return Reply{.tensors = r.tensors};
  });
  ASSERT_TRUE(server.Start().ok());
  // A call of the same shape first: the pools and connections that live
  // clients keep are in the baseline.
  Caller caller_here(*sender_, "a");
  auto buffer = sender_->AllocateHost(1 << 20);
  ASSERT_TRUE(buffer.ok());
  auto tensor = Tensor::Of(*buffer, 0, dtype::kUInt8, {1 << 20});
  ASSERT_TRUE(tensor.ok());
  ASSERT_TRUE(caller_here.Call(At("b"), "echo", "", {*tensor}).ok());
  const pid_t daemon = sending_daemon().process().pid();
  const uint64_t mapped_before = MappedClientBytes(daemon);
  const int fds_before = OpenFds(daemon);
  Child caller({HelperPath("call_peer"), sending_daemon().socket(), "doomed", "call", At("b"), "4",
                std::to_string(1 << 20)},
               dir_.File("caller.log"));
  ASSERT_TRUE(WaitFor([&] { return caller.Log().find("called") != std::string::npos; },
                      std::chrono::seconds(20)))
      << caller.Log();
  ASSERT_TRUE(WaitFor([&] { return started >= 1; }, std::chrono::seconds(20)));
  caller.Signal(SIGKILL);
  caller.Wait(std::chrono::seconds(10));
  // Every reply is dropped (the caller is gone) and counted; none hangs.
  auto slow = [&] {
    for (const MethodStats& m : server.Stats()) {
      if (m.method == "slow") return m;
    }
    return MethodStats{};
  };
  EXPECT_TRUE(WaitFor(
      [&] { return slow().calls == 4 && slow().dropped_replies == 4 && slow().in_flight == 0; },
      std::chrono::seconds(30)))
      << slow().calls << " calls ended, " << slow().dropped_replies << " replies dropped";
  EXPECT_TRUE(
      WaitFor([&] { return MappedClientBytes(daemon) == mapped_before; }, std::chrono::seconds(10)))
      << MappedClientBytes(daemon) << " bytes mapped, " << mapped_before << " before";
  EXPECT_TRUE(WaitFor([&] { return OpenFds(daemon) <= fds_before; }, std::chrono::seconds(10)))
      << OpenFds(daemon) << " fds open, " << fds_before << " before";
  // The server still serves.
  auto reply = caller_here.Call(At("b"), "slow", "", {});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->header, "too late");
}

TEST_P(CallFaultTest, KilledServerFailsItsCallsAndLeavesNothingBehind) {
  ASSERT_TRUE(receiver_->UnbindEndpoint("b").ok());
  Caller caller(*sender_, "a");
  {  // A call first: the pools and connections that live clients keep are in the baseline.
    ASSERT_TRUE(receiver_->BindEndpoint("warm").ok());
    Server warm(*receiver_, "warm");
    warm.Handle("echo", [](const Request&) -> absl::StatusOr<Reply> { return Reply{}; });
    ASSERT_TRUE(warm.Start().ok());
    ASSERT_TRUE(caller.Call(At("warm"), "echo", "", {}).ok());
  }
  const pid_t daemon = receiving_daemon().process().pid();
  const uint64_t mapped_before = MappedClientBytes(daemon);
  const int fds_before = OpenFds(daemon);
  Child server({HelperPath("call_peer"), receiving_daemon().socket(), "b", "serve"},
               dir_.File("server.log"));
  ASSERT_TRUE(WaitFor([&] { return server.Log().find("serving") != std::string::npos; },
                      std::chrono::seconds(20)))
      << server.Log();
  auto echo = caller.Call(At("b"), "echo", "alive?", {});
  ASSERT_TRUE(echo.ok()) << echo.status();
  // On one node the daemon sees the server's endpoint go and fails the
  // call at once; across nodes the call ends by its deadline.
  auto call = caller.CallAsync(At("b"), "slow", "", {}, {.timeout_ms = 4000});
  ASSERT_TRUE(call.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const absl::Time killed = absl::Now();
  server.Signal(SIGKILL);
  server.Wait(std::chrono::seconds(10));
  auto ended = call->Wait();
  EXPECT_FALSE(ended.ok());
  if (remote()) {
    EXPECT_EQ(ended.status().code(), absl::StatusCode::kDeadlineExceeded) << ended.status();
  } else {
    EXPECT_EQ(ended.status().code(), absl::StatusCode::kUnavailable) << ended.status();
    EXPECT_LT(absl::Now() - killed, absl::Seconds(2));
  }
  EXPECT_LT(absl::Now() - killed, absl::Seconds(6));
  EXPECT_TRUE(
      WaitFor([&] { return MappedClientBytes(daemon) == mapped_before; }, std::chrono::seconds(10)))
      << MappedClientBytes(daemon) << " bytes mapped, " << mapped_before << " before";
  EXPECT_TRUE(WaitFor([&] { return OpenFds(daemon) <= fds_before; }, std::chrono::seconds(10)))
      << OpenFds(daemon) << " fds open, " << fds_before << " before";
  // A call to the dead server's endpoint now fails NOT_FOUND at once.
  auto gone = caller.Call(At("b"), "echo", "", {});
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound) << gone.status();
  EXPECT_EQ(receiving_daemon().Ctl({"health"}).exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(Paths, CallFaultTest, ::testing::Bool(), PathName);

}  // namespace
}  // namespace axon::testing
