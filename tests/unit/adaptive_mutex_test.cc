// AdaptiveMutex: mutual exclusion under contention, try_lock, and waits on
// it through std::condition_variable_any (as the client's session does).
#include "common/adaptive_mutex.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace axon {
namespace {

TEST(AdaptiveMutexTest, ExcludesUnderContention) {
  AdaptiveMutex mu;
  uint64_t counter = 0;  // guarded by mu; a plain read-modify-write loses counts unguarded
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        std::lock_guard<AdaptiveMutex> lock(mu);
        const uint64_t seen = counter;
        if (i % 64 == 0) std::this_thread::yield();  // holders preempted: sleepers too
        counter = seen + 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, uint64_t{kThreads} * kEach);
}

TEST(AdaptiveMutexTest, TryLockFailsWhileHeld) {
  AdaptiveMutex mu;
  std::unique_lock<AdaptiveMutex> held(mu);
  bool taken = true;
  std::thread([&] { taken = mu.try_lock(); }).join();
  EXPECT_FALSE(taken);
  held.unlock();
  std::thread([&] {
    taken = mu.try_lock();
    if (taken) mu.unlock();
  }).join();
  EXPECT_TRUE(taken);
}

TEST(AdaptiveMutexTest, ConditionVariableAnyWaitsOnIt) {
  AdaptiveMutex mu;
  std::condition_variable_any cv;
  bool ready = false;  // guarded by mu
  std::thread setter([&] {
    std::lock_guard<AdaptiveMutex> lock(mu);
    ready = true;
    cv.notify_all();
  });
  {
    std::unique_lock<AdaptiveMutex> lock(mu);
    cv.wait(lock, [&] { return ready; });
    EXPECT_TRUE(ready);
  }
  setter.join();
}

}  // namespace
}  // namespace axon
