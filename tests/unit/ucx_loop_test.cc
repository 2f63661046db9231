// The UCX thread against the real UCX library: tasks run in order on one
// thread, Ping answers, an idle loop sleeps instead of spinning, and its busy
// time counts work only.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "daemon/ucx/endpoint.h"
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

// A Post to a loop that is running (here: its poller keeps it spinning)
// leaves the eventfd alone: the loop finds the task on its next turn. One
// to a sleeping loop writes it, and the task runs.
TEST(UcxLoop, OnlyASleepingLoopIsWokenByAPost) {
  auto loop = Loop::Start({});
  ASSERT_TRUE(loop.ok()) << loop.status();
  std::atomic<bool> spin{true};
  ASSERT_TRUE((*loop)
                  ->Call<bool>(
                      [&] {
                        (*loop)->SetPollerFromLoop(
                            [&] { return spin.load() ? Polled::kSpin : Polled::kIdle; }, nullptr);
                        return true;
                      },
                      absl::Seconds(10))
                  .ok());
  const uint64_t before = (*loop)->wake_writes();
  std::atomic<int> ran{0};
  for (int i = 0; i < 10000; ++i) (*loop)->Post([&ran] { ran.fetch_add(1); });
  EXPECT_TRUE((*loop)->Ping(absl::Seconds(10)).ok());
  EXPECT_EQ(ran.load(), 10000);
  EXPECT_LE((*loop)->wake_writes() - before, 2u);  // none, but for a sleep already under way
  spin = false;
  // Asleep now (no poller work, no tasks): the next Post wakes it.
  bool quiet = false;
  for (int i = 0; i < 100 && !quiet; ++i) {
    const uint64_t wakeups = (*loop)->wakeups();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    quiet = (*loop)->wakeups() == wakeups;
  }
  ASSERT_TRUE(quiet);
  const uint64_t asleep = (*loop)->wake_writes();
  EXPECT_TRUE((*loop)->Ping(absl::Seconds(10)).ok());
  EXPECT_GE((*loop)->wake_writes(), asleep + 1);
  (void)(*loop)->Call<bool>(
      [&] {
        (*loop)->SetPollerFromLoop(nullptr, nullptr);
        return true;
      },
      absl::Seconds(10));
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

// The busy time counts turns that did work (a task, a poller's work) and
// not a poller that only spins, nor sleep.
TEST(UcxLoop, BusyTimeCountsWorkOnly) {
  auto loop = Loop::Start({});
  ASSERT_TRUE(loop.ok()) << loop.status();
  Loop* l = loop->get();
  std::atomic<int> work_turns{0};
  std::atomic<bool> spin{false};
  ASSERT_TRUE(l->Call<bool>(
                   [l, &work_turns, &spin] {
                     l->SetPollerFromLoop(
                         [&work_turns, &spin] {
                           if (work_turns.load() > 0) {
                             work_turns.fetch_sub(1);
                             const auto until =
                                 std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
                             while (std::chrono::steady_clock::now() < until) {
                             }
                             return Polled::kWork;
                           }
                           return spin.load() ? Polled::kSpin : Polled::kIdle;
                         },
                         [] { return true; });
                     return true;
                   },
                   absl::Seconds(5))
                  .ok());
  const absl::Duration start = l->busy();
  // Idle: asleep for 200 ms.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(l->busy() - start, absl::Milliseconds(20));
  // Spinning without work for 200 ms.
  spin = true;
  l->Post([] {});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  spin = false;
  l->Post([] {});
  ASSERT_TRUE(l->Ping(absl::Seconds(5)).ok());
  EXPECT_LT(l->busy() - start, absl::Milliseconds(40));
  // 100 turns of 1 ms work: at least 100 ms busy.
  const absl::Duration before_work = l->busy();
  work_turns = 100;
  l->Post([] {});
  while (work_turns.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(l->Ping(absl::Seconds(5)).ok());
  EXPECT_GE(l->busy() - before_work, absl::Milliseconds(100));
  ASSERT_TRUE(l->Call<bool>(
                   [l] {
                     l->SetPollerFromLoop(nullptr, nullptr);
                     return true;
                   },
                   absl::Seconds(5))
                  .ok());
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

TEST(UcxLoop, KnowsItsOwnThread) {
  auto loop = Loop::Start({});
  ASSERT_TRUE(loop.ok()) << loop.status();
  EXPECT_FALSE(Loop::OnALoopThread());
  auto on_loop = (*loop)->Call<bool>([] { return Loop::OnALoopThread(); }, absl::Seconds(10));
  ASSERT_TRUE(on_loop.ok());
  EXPECT_TRUE(*on_loop);
}

// Several loops on one context, each on its own thread with its own
// workers (what engine shards stand on): a message goes from one loop's
// worker to the other's and back, and the context outlives both loops.
TEST(UcxLoop, LoopsShareOneContext) {
  auto context = Context::Create({.shared_by_threads = true});
  ASSERT_TRUE(context.ok()) << context.status();
  std::shared_ptr<Context> shared = *std::move(context);
  auto a = Loop::StartOn(shared);
  auto b = Loop::StartOn(shared);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->info().version, (*b)->info().version);

  constexpr uint16_t kId = 3;
  std::promise<std::thread::id> pong;
  std::unique_ptr<Endpoint> a_to_b, b_to_a;
  // a answers nothing; b answers every ping with a pong from its own thread.
  auto address_a = (*a)->Call<absl::StatusOr<std::vector<uint8_t>>>(
      [&] {
        (void)(*a)->DataWorkerFromLoop().SetAmHandler(
            kId, [&](AmMessage&) { pong.set_value(std::this_thread::get_id()); });
        return (*a)->DataWorkerFromLoop().Address();
      },
      absl::Seconds(10));
  ASSERT_TRUE(address_a.ok() && address_a->ok());
  auto address_b = (*b)->Call<absl::StatusOr<std::vector<uint8_t>>>(
      [&]() -> absl::StatusOr<std::vector<uint8_t>> {
        auto ep = Endpoint::ConnectToWorker((*b)->DataWorkerFromLoop(), **address_a,
                                            [](const absl::Status&) {});
        if (!ep.ok()) return ep.status();
        b_to_a = *std::move(ep);
        (void)(*b)->DataWorkerFromLoop().SetAmHandler(kId, [&](AmMessage&) {
          const uint8_t header[1] = {2};
          b_to_a->SendAm(kId, header, {}, nullptr);
        });
        return (*b)->DataWorkerFromLoop().Address();
      },
      absl::Seconds(10));
  ASSERT_TRUE(address_b.ok() && address_b->ok()) << address_b->status();
  auto sent = (*a)->Call<absl::Status>(
      [&]() -> absl::Status {
        auto ep = Endpoint::ConnectToWorker((*a)->DataWorkerFromLoop(), **address_b,
                                            [](const absl::Status&) {});
        if (!ep.ok()) return ep.status();
        a_to_b = *std::move(ep);
        const uint8_t header[1] = {1};
        a_to_b->SendAm(kId, header, {}, nullptr);
        return absl::OkStatus();
      },
      absl::Seconds(10));
  ASSERT_TRUE(sent.ok() && sent->ok());
  auto answered = pong.get_future();
  ASSERT_EQ(answered.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto a_thread =
      (*a)->Call<std::thread::id>([] { return std::this_thread::get_id(); }, absl::Seconds(10));
  ASSERT_TRUE(a_thread.ok());
  EXPECT_EQ(answered.get(), *a_thread);  // handled on a's own thread
  // Endpoints go on their loops' threads, before the workers.
  (void)(*a)->Call<bool>(
      [&] {
        a_to_b.reset();
        return true;
      },
      absl::Seconds(10));
  (void)(*b)->Call<bool>(
      [&] {
        b_to_a.reset();
        return true;
      },
      absl::Seconds(10));
  a->reset();
  b->reset();
  EXPECT_EQ(shared.use_count(), 1);  // the loops let go; the context is still here
}

#ifndef NDEBUG
// The FromLoop rule, checked: a loop-only entry point called from another
// thread stops the process with the function's name.
TEST(UcxLoopDeathTest, AFromLoopCallOffTheLoopAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the loop runs a thread
  auto loop = Loop::Start({});
  ASSERT_TRUE(loop.ok()) << loop.status();
  EXPECT_DEATH((*loop)->UnwatchFdFromLoop(-1),
               "UnwatchFdFromLoop runs only on the UCX loop thread");
}
#endif

}  // namespace
}  // namespace axon::ucx
