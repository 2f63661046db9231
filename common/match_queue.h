// A queue of posted operations matched by tag: receives waiting for a
// message, or messages waiting for a receive. Matching takes the first entry
// in posting order that has the message's tag and that the caller's
// predicate accepts (a receive may name its sender), in time that does not
// grow with the number of other tags queued.
//
// Why not a plain FIFO: a caller with hundreds of calls in flight posts a
// receive per call, each with its own tag, and the replies come back in any
// order. A scan from the front and an erase from the middle cost a pass over
// (and a move of) every older entry, per message.
//
// Entries sit in one vector in posting order; each also links to the next
// entry of its tag, and a hash map holds the first and last of each tag.
// Taking an entry leaves a hole that later taking from the front, or a
// compaction once holes outnumber entries three to one, reclaims: storage
// stays within four times the entries held (plus a small constant), and a
// queue of steady size allocates nothing per entry. A compaction moves
// every entry: the more holes it waits for, the fewer moves per entry taken
// (at one to one, a queue of a few hundred calls in flight, each taken out
// of the middle, moved and relinked about one entry per take).
//
// T is movable and has a `uint64_t tag` member.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace axon {

template <typename T>
class MatchQueue {
 public:
  bool empty() const { return live_ == 0; }
  size_t size() const { return live_; }
  // Slots in use, holes included (for tests of the storage bound).
  size_t storage() const { return slots_.size() - head_; }

  // Entries are large (an engine's pending operations): each is moved once
  // in and once out, and compactions move it again.
  void push_back(T&& value) {
    const uint64_t tag = value.tag;
    const size_t at = slots_.size();
    slots_.emplace_back(std::move(value));
    ++live_;
    auto [it, added] = chains_.try_emplace(tag, Chain{at, at});
    if (!added) {
      slots_[it->second.last].next = at;
      it->second.last = at;
    }
  }

  // Removes and returns the first entry, in posting order, with `tag` for
  // which `accepts(const T&)` holds.
  template <typename Pred>
  std::optional<T> TakeFirst(uint64_t tag, Pred accepts) {
    auto chain = chains_.find(tag);
    if (chain == chains_.end()) return std::nullopt;
    for (size_t prev = kNone, i = chain->second.first; i != kNone; prev = i, i = slots_[i].next) {
      if (!accepts(static_cast<const T&>(*slots_[i].value))) continue;
      std::optional<T> taken = std::move(slots_[i].value);
      Unlink(chain, i, prev);
      Reclaim();
      return taken;
    }
    return std::nullopt;
  }

  // Removes and returns the first entry, of any tag, for which `pred` holds.
  template <typename Pred>
  std::optional<T> TakeFirstIf(Pred pred) {
    for (size_t i = head_; i < slots_.size(); ++i) {
      if (!slots_[i].live() || !pred(static_cast<const T&>(*slots_[i].value))) continue;
      std::optional<T> taken = std::move(slots_[i].value);
      Remove(i);
      Reclaim();
      return taken;
    }
    return std::nullopt;
  }

  // Calls `pred(T&)` on every entry in posting order and removes those it
  // returns true for; the others keep their order. `pred` may change the
  // entry but not its tag, and must not touch this queue.
  template <typename Pred>
  size_t remove_if(Pred pred) {
    size_t removed = 0;
    for (size_t i = head_; i < slots_.size(); ++i) {
      if (!slots_[i].live() || !pred(*slots_[i].value)) continue;
      Remove(i);
      ++removed;
    }
    Reclaim();
    return removed;
  }

  template <typename Pred>
  bool any_of(Pred pred) const {
    for (size_t i = head_; i < slots_.size(); ++i) {
      if (slots_[i].live() && pred(*slots_[i].value)) return true;
    }
    return false;
  }

  template <typename Fn>
  void for_each(Fn fn) const {
    for (size_t i = head_; i < slots_.size(); ++i) {
      if (slots_[i].live()) fn(*slots_[i].value);
    }
  }

 private:
  static constexpr size_t kNone = std::numeric_limits<size_t>::max();
  struct Slot {
    explicit Slot(T&& v) : value(std::move(v)) {}
    bool live() const { return value.has_value(); }
    std::optional<T> value;  // none: a hole
    size_t next = kNone;     // the next entry with the same tag, or kNone
  };
  struct Chain {
    size_t first, last;
  };
  using Chains = absl::flat_hash_map<uint64_t, Chain>;

  // Takes slot `i` out of its tag's chain, where `prev` precedes it.
  void Unlink(typename Chains::iterator chain, size_t i, size_t prev) {
    Slot& s = slots_[i];
    if (prev == kNone) {
      chain->second.first = s.next;
    } else {
      slots_[prev].next = s.next;
    }
    if (chain->second.last == i) chain->second.last = prev;
    if (chain->second.first == kNone) chains_.erase(chain);
    s.value.reset();  // let go of what it holds now
    --live_;
  }

  // Unlinks slot `i`, finding its predecessor on its chain.
  void Remove(size_t i) {
    auto chain = chains_.find(slots_[i].value->tag);
    size_t prev = kNone;
    for (size_t j = chain->second.first; j != i; j = slots_[j].next) prev = j;
    Unlink(chain, i, prev);
  }

  // Moves the front past holes; compacts once holes outnumber entries three
  // to one.
  void Reclaim() {
    while (head_ < slots_.size() && !slots_[head_].live()) ++head_;
    if (live_ == 0) {
      slots_.clear();  // keeps the capacity
      head_ = 0;
      return;
    }
    const size_t holes = slots_.size() - live_;
    if (holes > 16 && holes > 3 * live_) Compact();
  }

  // Moves the entries to the front, in order, and links the chains afresh.
  void Compact() {
    size_t out = 0;
    for (size_t i = head_; i < slots_.size(); ++i) {
      if (!slots_[i].live()) continue;
      if (out != i) slots_[out] = std::move(slots_[i]);
      slots_[out].next = kNone;
      ++out;
    }
    slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(out), slots_.end());
    head_ = 0;
    chains_.clear();
    for (size_t i = 0; i < slots_.size(); ++i) {
      auto [it, added] = chains_.try_emplace(slots_[i].value->tag, Chain{i, i});
      if (!added) {
        slots_[it->second.last].next = i;
        it->second.last = i;
      }
    }
  }

  std::vector<Slot> slots_;
  size_t head_ = 0;
  size_t live_ = 0;
  Chains chains_;
};

}  // namespace axon
