// axon::Mutex: std::mutex with clang's capability annotations, so that
// ABSL_GUARDED_BY fields are checked (tests/deploy/check_thread_safety.py).
// Not absl::Mutex: Debian's abseil is built without TSan, which then cannot
// see absl::Mutex synchronize and reports races that are none; std::mutex
// goes through pthread, which TSan intercepts.
#pragma once

#include <mutex>

#include "absl/base/thread_annotations.h"

namespace axon {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // BasicLockable, for std::condition_variable_any: wait(mu_) inside a
  // MutexLock's scope.
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace axon
