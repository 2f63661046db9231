// A map whose values stay where they were put: each value lives in a slot
// of its own, found by key through a flat index of slot numbers, and a slot
// freed by Erase or Take takes the next value. For large values added and
// removed at a high rate: a flat_hash_map of such values moves every one of
// them whenever it rehashes (which erasing and adding alone triggers, to
// clear its tombstones), and a node map allocates each. Here a value is
// moved once, in, and a map that reaches a steady size allocates nothing.
//
// Pointers and references to a value stay valid until it is erased or
// taken. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace axon {

template <typename K, typename T>
class SlotMap {
 public:
  // Adds `value` under `key`, which must not be in the map.
  T& Emplace(const K& key, T&& value) {
    uint32_t slot;
    if (free_.empty()) {
      slot = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back(std::move(value));
    } else {
      slot = free_.back();
      free_.pop_back();
      slots_[slot].emplace(std::move(value));
    }
    index_.emplace(key, slot);
    return *slots_[slot];
  }

  // The value under `key`, or null.
  T* Find(const K& key) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &*slots_[it->second];
  }

  // Takes the value under `key` out of the map, or nothing.
  std::optional<T> Take(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    std::optional<T> value = std::move(slots_[it->second]);
    Free(it);
    return value;
  }

  // Destroys the value under `key`; false when there is none.
  bool Erase(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    Free(it);
    return true;
  }

  // Calls f(key, value) for each value, in no particular order; f must not
  // add or remove any.
  template <typename F>
  void ForEach(F&& f) {
    for (auto& [key, slot] : index_) f(key, *slots_[slot]);
  }

  size_t size() const { return index_.size(); }
  bool empty() const { return index_.empty(); }
  // Slots made so far, in use or free: the most values held at once.
  size_t slots() const { return slots_.size(); }

  void Clear() {
    index_.clear();
    slots_.clear();
    free_.clear();
  }

 private:
  void Free(typename absl::flat_hash_map<K, uint32_t>::iterator it) {
    slots_[it->second].reset();
    free_.push_back(it->second);
    index_.erase(it);
  }

  absl::flat_hash_map<K, uint32_t> index_;
  std::deque<std::optional<T>> slots_;  // a deque: growing moves no value
  std::vector<uint32_t> free_;
};

}  // namespace axon
