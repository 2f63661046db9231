// Mailbox<T>: items handed from any thread to one owner thread, in the
// order they were put, with no allocation per item once warm: the owner
// swaps the whole list for its own empty one, so both keep their capacity.
// Cheaper than posting a task per item, which allocates the task and the
// queue's blocks and frees them on another thread.
//
// Sleep without losing mail: the owner announces that it may sleep, then
// looks at maybe_full(); a putter sets the flag, then looks whether the owner
// sleeps. Both are sequentially consistent, so at least one sees the other.
#pragma once

#include <atomic>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/annotated_mutex.h"

namespace axon {

template <typename T>
class Mailbox {
 public:
  // Any thread. Returns once the item is in: the caller then wakes the owner
  // if it sleeps.
  void Put(T item) {
    {
      MutexLock lock(&mu_);
      items_.push_back(std::move(item));
    }
    full_.store(true, std::memory_order_seq_cst);
  }

  // The same for every item of `items`, in order, under one lock; `items`
  // is left empty, with its capacity.
  void PutAll(std::vector<T>& items) {
    if (items.empty()) return;
    {
      MutexLock lock(&mu_);
      for (T& item : items) items_.push_back(std::move(item));
    }
    items.clear();
    full_.store(true, std::memory_order_seq_cst);
  }

  // Whether something may be waiting (a hint for the owner's fast path).
  bool maybe_full() const { return full_.load(std::memory_order_seq_cst); }

  // The owner: everything put so far, in order, into `into` (emptied first).
  void TakeAll(std::vector<T>& into) {
    into.clear();
    if (!maybe_full()) return;
    MutexLock lock(&mu_);
    items_.swap(into);
    full_.store(false, std::memory_order_relaxed);
  }

 private:
  Mutex mu_;
  std::vector<T> items_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> full_{false};
};

}  // namespace axon
