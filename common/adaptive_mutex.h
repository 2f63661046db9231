// A mutex that spins a while before it sleeps: glibc's adaptive kind
// (PTHREAD_MUTEX_ADAPTIVE_NP). For a lock held briefly by threads that have
// cores of their own, such as a client's submitting thread and its
// completion thread, std::mutex sleeps in the kernel at the first
// contention and the holder pays a futex wake-up at unlock: each a system
// call, and on a virtual machine a wake-up of an idle CPU too.
// Lockable, for std::lock_guard and std::unique_lock (and with those,
// std::condition_variable_any).
#pragma once

#include <pthread.h>

namespace axon {

class AdaptiveMutex {
 public:
  AdaptiveMutex() {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&mu_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  ~AdaptiveMutex() { pthread_mutex_destroy(&mu_); }
  AdaptiveMutex(const AdaptiveMutex&) = delete;
  AdaptiveMutex& operator=(const AdaptiveMutex&) = delete;

  void lock() { pthread_mutex_lock(&mu_); }
  bool try_lock() { return pthread_mutex_trylock(&mu_) == 0; }
  void unlock() { pthread_mutex_unlock(&mu_); }

 private:
  pthread_mutex_t mu_;
};

}  // namespace axon
