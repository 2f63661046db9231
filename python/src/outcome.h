// How a call's or a message operation's end reaches Python: libaxon's thread
// stores the value (never touching Python), wakes blocking waiters, and,
// for an operation asyncio awaits, pushes the handle's token to the client's
// notifier. Only those: a token nobody drains would stay queued until the
// client closes (a program that only waits would grow without bound).
#pragma once

#include <nanobind/nanobind.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "common/cpu_relax.h"
#include "notifier.h"
#include "status.h"

namespace axon::python {

template <typename T>
class Outcome {
 public:
  Outcome(std::shared_ptr<Notifier> notifier, uint64_t token)
      : notifier_(std::move(notifier)), token_(token) {}

  // Any thread; once.
  void Set(T value) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      value_ = std::move(value);
    }
    // Sequentially consistent with Await's store and load: either this sees
    // the operation awaited, or Await sees it done (both may).
    set_.store(true);
    cv_.notify_all();
    if (awaited_.load()) notifier_->Push(token_);
  }
  bool done() const { return set_.load(std::memory_order_acquire); }
  // Asyncio awaits it: its token goes to the notifier when it ends. True if
  // it has ended already (then the token may or may not come: the caller
  // resolves it itself).
  bool Await() {
    awaited_.store(true);
    return set_.load();
  }
  // True once set; negative `timeout` (seconds): no limit. The GIL must be
  // released. It spins briefly before it sleeps, as a call's wait does
  // (PendingCall::WaitFor): waking a sleeping thread costs more than a fast
  // operation takes. Not with under four CPUs to run on, where the spinning
  // thread would hold the CPU that the completing threads need.
  bool WaitFor(double timeout) const {
    if (SpinningPays()) {
      const auto until = std::chrono::steady_clock::now() +
                         (timeout >= 0 && timeout < 50e-6 ? std::chrono::duration<double>(timeout)
                                                          : std::chrono::duration<double>(50e-6));
      for (int spins = 0;; ++spins) {
        if (done()) return true;
        if (spins % 64 == 63 && std::chrono::steady_clock::now() >= until) break;
        CpuRelax();
      }
    }
    std::unique_lock<std::mutex> lock(mu_);
    auto set = [&] { return value_.has_value(); };
    if (timeout < 0) {
      cv_.wait(lock, set);
      return true;
    }
    return cv_.wait_for(lock, std::chrono::duration<double>(timeout), set);
  }
  // `read(value)` under the lock; FAILED_PRECONDITION `not_yet` before Set.
  template <typename Read>
  auto With(Read read, const char* not_yet) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (!value_) throw StatusError(absl::FailedPreconditionError(not_yet));
    return read(*value_);
  }
  // The same, for a `read` that takes from the value (moves out of it).
  template <typename Read>
  auto Take(Read read, const char* not_yet) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!value_) throw StatusError(absl::FailedPreconditionError(not_yet));
    return read(*value_);
  }
  uint64_t token() const { return token_; }

 private:
  static bool SpinningPays() {
    static const bool pays = [] {
      cpu_set_t cpus;  // what this process may run on, not the machine's count
      if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0) return false;
      return CPU_COUNT(&cpus) >= 4;
    }();
    return pays;
  }

  const std::shared_ptr<Notifier> notifier_;
  const uint64_t token_;
  std::atomic<bool> set_{false};
  std::atomic<bool> awaited_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::optional<T> value_;  // guarded by mu_
};

}  // namespace axon::python
