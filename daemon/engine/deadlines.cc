#include "daemon/engine/deadlines.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace axon::daemon {

bool Deadlines::Add(uint64_t session, uint64_t op_id, uint32_t timeout_ms, absl::Time now) {
  const absl::Time when = now + absl::Milliseconds(timeout_ms);
  open_.insert(Key{session, op_id});
  if (heap_.size() >= compact_at_) Compact();
  const bool earliest = heap_.empty() || when < heap_.front().when;
  heap_.push_back(Entry{when, session, op_id, timeout_ms});
  std::push_heap(heap_.begin(), heap_.end());
  return earliest;
}

void Deadlines::SessionClosed(uint64_t session) {
  absl::erase_if(open_, [session](const Key& k) { return k.first == session; });
}

std::optional<absl::Time> Deadlines::Next() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.front().when;
}

void Deadlines::Expire(
    absl::FunctionRef<void(uint64_t session, uint64_t op_id, const absl::Status& why)> expired) {
  const absl::Time now = clock_.Now();
  while (!heap_.empty() && heap_.front().when <= now) {
    std::pop_heap(heap_.begin(), heap_.end());
    const Entry e = heap_.back();
    heap_.pop_back();
    // Done already is the common case: then nothing happens.
    if (open_.erase(Key{e.session, e.op_id}) == 0) continue;
    expired(e.session, e.op_id,
            absl::DeadlineExceededError(
                absl::StrCat("not completed within its deadline of ", e.timeout_ms, " ms")));
  }
}

void Deadlines::Compact() {
  std::erase_if(heap_, [this](const Entry& e) { return !open_.contains(Key{e.session, e.op_id}); });
  std::make_heap(heap_.begin(), heap_.end());
  // Amortized: the next compaction waits until the heap has doubled.
  compact_at_ = std::max<size_t>(4096, 2 * heap_.size());
}

}  // namespace axon::daemon
