// A FIFO queue in a vector that keeps its storage: taking from the front
// moves a head index, and the vector is emptied (not freed) once drained or
// compacted once the taken half dominates. A queue that reaches a steady
// size allocates nothing per element, unlike std::deque, which allocates
// and frees a block every few elements of a large type.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace axon {

template <typename T>
class ReusedQueue {
 public:
  using iterator = typename std::vector<T>::iterator;
  using const_iterator = typename std::vector<T>::const_iterator;

  iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  const_iterator end() const { return items_.end(); }
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  T& operator[](size_t i) { return items_[head_ + i]; }

  void push_back(T value) {
    if (empty()) Reset();
    items_.push_back(std::move(value));
  }
  void pop_front() {
    items_[head_] = T();  // let go of what it holds now
    if (++head_ == items_.size()) {
      Reset();
    } else if (head_ > 16 && head_ * 2 > items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void swap(ReusedQueue& other) noexcept {
    items_.swap(other.items_);
    std::swap(head_, other.head_);
  }
  // Removes the element at `it`; returns the position after it.
  iterator erase(iterator it) {
    if (it == begin()) {
      pop_front();
      return begin();
    }
    return items_.erase(it);
  }
  // Removes every element `pred` holds for, keeping the others' order.
  template <typename Pred>
  size_t remove_if(Pred pred) {
    size_t removed = 0;
    for (auto it = begin(); it != end();) {
      if (pred(*it)) {
        it = erase(it);
        ++removed;
      } else {
        ++it;
      }
    }
    return removed;
  }

 private:
  void Reset() {
    items_.clear();  // keeps the capacity
    head_ = 0;
  }
  std::vector<T> items_;
  size_t head_ = 0;
};

}  // namespace axon
