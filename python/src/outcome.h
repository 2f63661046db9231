// How a call's or a message operation's end reaches Python: libaxon's thread
// stores the value (never touching Python), wakes blocking waiters, and
// pushes the handle's token to the client's notifier for asyncio.
#pragma once

#include <nanobind/nanobind.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

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
    cv_.notify_all();
    notifier_->Push(token_);
  }
  bool done() const {
    std::lock_guard<std::mutex> lock(mu_);
    return value_.has_value();
  }
  // True once set; negative `timeout` (seconds): no limit. The GIL must be
  // released.
  bool WaitFor(double timeout) const {
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
  const std::shared_ptr<Notifier> notifier_;
  const uint64_t token_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::optional<T> value_;  // guarded by mu_
};

}  // namespace axon::python
