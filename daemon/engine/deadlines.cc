// RingEngine, part: deadlines and cancellation. A timerfd in the UCX loop's
// epoll set fires at the earliest deadline; an expired or cancelled operation
// still pending here (or on the remote path) completes with the reason.
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/engine/ring_engine.h"

namespace axon::daemon {

bool RingEngine::Abort(uint64_t id, uint64_t op_id, const absl::Status& why) {
  for (auto& [name, queues] : endpoints_) {
    for (auto* q : {&queues.receives, &queues.sends}) {
      if (q->TakeFirstIf([&](const Pending& p) {
            return !p.incoming && p.session == id && p.op_id == op_id;
          })) {
        Complete(id, op_id, why);
        return true;
      }
    }
  }
  return remote_ && remote_->AbortFromLoop(id, op_id, why);
}

void RingEngine::AddDeadline(uint64_t id, uint64_t op_id, uint32_t timeout_ms) {
  const absl::Time when = absl::Now() + absl::Milliseconds(timeout_ms);
  auto session = sessions_.find(id);
  if (session == sessions_.end()) return;
  session->second->deadline_ops.insert(op_id);
  if (deadlines_.size() >= deadlines_compact_at_) CompactDeadlines();
  const bool earliest = deadlines_.empty() || when < deadlines_.front().when;
  deadlines_.push_back(Deadline{when, id, op_id, timeout_ms});
  std::push_heap(deadlines_.begin(), deadlines_.end());
  if (!deadline_timer_.valid()) {
    deadline_timer_.Reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!deadline_timer_.valid() ||
        !loop_.WatchFdFromLoop(deadline_timer_.get(), [this] { OnDeadlineTimer(); }).ok()) {
      spdlog::error("deadlines: no timer ({}); they fire only when the engine is busy",
                    std::strerror(errno));
      deadline_timer_.Reset();
    }
  }
  if (earliest) ArmDeadlineTimer();
}

void RingEngine::CompactDeadlines() {
  std::erase_if(deadlines_, [this](const Deadline& d) {
    auto it = sessions_.find(d.session);
    return it == sessions_.end() || !it->second->deadline_ops.contains(d.op_id);
  });
  std::make_heap(deadlines_.begin(), deadlines_.end());
  // Amortized: the next compaction waits until the heap has doubled.
  deadlines_compact_at_ = std::max<size_t>(4096, 2 * deadlines_.size());
}

void RingEngine::ArmDeadlineTimer() {
  if (!deadline_timer_.valid()) return;
  itimerspec spec{};
  if (!deadlines_.empty()) {
    const int64_t ns =
        std::max<int64_t>(1000, absl::ToInt64Nanoseconds(deadlines_.front().when - absl::Now()));
    spec.it_value.tv_sec = ns / 1000000000;
    spec.it_value.tv_nsec = ns % 1000000000;
  }
  ::timerfd_settime(deadline_timer_.get(), 0, &spec, nullptr);
}

void RingEngine::OnDeadlineTimer() {
  uint64_t expirations;
  while (::read(deadline_timer_.get(), &expirations, sizeof(expirations)) > 0) {
  }
  const absl::Time now = absl::Now();
  while (!deadlines_.empty() && deadlines_.front().when <= now) {
    std::pop_heap(deadlines_.begin(), deadlines_.end());
    const Deadline d = deadlines_.back();
    deadlines_.pop_back();
    // Gone already (completed) is the common case: then nothing happens.
    Abort(d.session, d.op_id,
          absl::DeadlineExceededError(
              absl::StrCat("not completed within its deadline of ", d.timeout_ms, " ms")));
  }
  ArmDeadlineTimer();
}

}  // namespace axon::daemon
