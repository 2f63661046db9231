// The UCX thread against the real UCX library: tasks run in order on one
// thread, Ping answers, and an idle loop sleeps instead of spinning.
#include <gtest/gtest.h>

#include <future>
#include <thread>
#include <vector>

#include "daemon/ucx/loop.h"

namespace axon::ucx {
namespace {

TEST(UcxLoop, StartsAndReportsTheLibrary) {
  auto loop = Loop::Start({});
  ASSERT_TRUE(loop.ok()) << loop.status();
  const ContextInfo& info = (*loop)->info();
  EXPECT_FALSE(info.version.empty());
  EXPECT_FALSE(info.memory_types.empty());
  EXPECT_EQ(info.memory_types.front(), "host");
  // Every UCX build has the loopback transport ("self/memory" in 1.22,
  // "self/memory0" in 1.13).
  EXPECT_NE(std::find_if(info.transports.begin(), info.transports.end(),
                         [](const std::string& tl) { return tl.rfind("self/", 0) == 0; }),
            info.transports.end());
}

TEST(UcxLoop, TransportRestrictionIsApplied) {
  auto loop = Loop::Start({.transports = "tcp"});
  ASSERT_TRUE(loop.ok()) << loop.status();
  for (const std::string& tl : (*loop)->info().transports) {
    EXPECT_TRUE(tl.rfind("tcp/", 0) == 0 || tl.rfind("self/", 0) == 0) << tl;
  }
}

TEST(UcxLoop, UnknownTransportFailsCleanly) {
  auto loop = Loop::Start({.transports = "no_such_transport"});
  EXPECT_FALSE(loop.ok());
}

TEST(UcxLoop, TasksRunInOrderOnTheLoopThread) {
  auto loop = Loop::Start({});
  ASSERT_TRUE(loop.ok()) << loop.status();
  std::vector<int> order;
  std::promise<std::thread::id> where;
  constexpr int kTasks = 1000;
  std::vector<std::thread> posters;
  for (int i = 0; i < kTasks; ++i) {
    (*loop)->Post([&order, i, l = loop->get()] {
      EXPECT_TRUE(l->InLoopThread());
      order.push_back(i);
    });
  }
  (*loop)->Post([&where] { where.set_value(std::this_thread::get_id()); });
  EXPECT_NE(where.get_future().get(), std::this_thread::get_id());
  ASSERT_EQ(order.size(), static_cast<size_t>(kTasks));
  for (int i = 0; i < kTasks; ++i) EXPECT_EQ(order[static_cast<size_t>(i)], i);
  EXPECT_GE((*loop)->tasks_run(), static_cast<uint64_t>(kTasks));
}

TEST(UcxLoop, PostFromManyThreads) {
  auto loop = Loop::Start({});
  ASSERT_TRUE(loop.ok()) << loop.status();
  std::atomic<int> ran{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) (*loop)->Post([&ran] { ran.fetch_add(1); });
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE((*loop)->Ping(absl::Seconds(10)).ok());
  EXPECT_EQ(ran.load(), 2000);
}

TEST(UcxLoop, IdleLoopSleeps) {
  auto loop = Loop::Start({});
  ASSERT_TRUE(loop.ok()) << loop.status();
  ASSERT_TRUE((*loop)->Ping(absl::Seconds(5)).ok());
  const uint64_t before = (*loop)->wakeups();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // A spinning loop would wake thousands of times; a sleeping one not at all
  // (a stray UCX event may wake it once or twice).
  EXPECT_LE((*loop)->wakeups() - before, 2u);
}

TEST(UcxLoop, DestructionRunsPendingTasks) {
  std::atomic<int> ran{0};
  {
    auto loop = Loop::Start({});
    ASSERT_TRUE(loop.ok()) << loop.status();
    for (int i = 0; i < 100; ++i) (*loop)->Post([&ran] { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 100);
}

}  // namespace
}  // namespace axon::ucx
