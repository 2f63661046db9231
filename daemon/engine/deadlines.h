// Deadlines of client operations, against a Clock: the engine arms its timer
// for Next() and calls Expire when it fires; tests move a fake clock instead.
//
// A min-heap in a vector kept from operation to operation: adding a deadline
// (nearly every operation has one) allocates nothing once the vector has
// grown. An operation that completes is only marked done; its entry stays in
// the heap until its time comes and then expires nothing. Past a size the
// heap drops such entries, at a cost amortized over the adds.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace axon::daemon {

class Deadlines {
 public:
  explicit Deadlines(const Clock& clock = Clock::Real()) : clock_(clock) {}

  // Operation `op_id` of `session` has `timeout_ms` from `now` (the caller's
  // reading of the clock, which it may share between operations taken at
  // once). True when it is now the earliest (the caller re-arms its timer).
  bool Add(uint64_t session, uint64_t op_id, uint32_t timeout_ms, absl::Time now);
  // The operation completed: it expires no more.
  void Done(uint64_t session, uint64_t op_id) {
    if (!open_.empty()) open_.erase(Key{session, op_id});
  }
  // The session closed: none of its operations expires.
  void SessionClosed(uint64_t session);

  // When the earliest entry is due (it may belong to an operation done
  // since), or nothing when there is none.
  std::optional<absl::Time> Next() const;
  // Calls `expired` for every operation not done whose deadline has passed,
  // earliest first, with DEADLINE_EXCEEDED and its timeout in the message.
  void Expire(
      absl::FunctionRef<void(uint64_t session, uint64_t op_id, const absl::Status& why)> expired);

  // Operations with a deadline, not done (tests).
  size_t open() const { return open_.size(); }
  // Entries in the heap, done ones included (tests of the bound).
  size_t entries() const { return heap_.size(); }

 private:
  using Key = std::pair<uint64_t, uint64_t>;  // session, op id
  struct Entry {
    absl::Time when;
    uint64_t session, op_id;
    uint32_t timeout_ms;
    // For a min-heap: the earliest at the front.
    bool operator<(const Entry& other) const { return when > other.when; }
  };
  // Drops the entries of operations done.
  void Compact();

  const Clock& clock_;
  std::vector<Entry> heap_;
  absl::flat_hash_set<Key> open_;
  size_t compact_at_ = 4096;
};

}  // namespace axon::daemon
