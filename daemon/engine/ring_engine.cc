#include "daemon/engine/ring_engine.h"

#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace axon::daemon {
namespace {

void Ring(int bell) {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(bell, &one, sizeof(one));
}

}  // namespace

RingEngine::~RingEngine() {
  for (auto& [id, session] : sessions_) loop_.UnwatchFdFromLoop(session->rings.daemon_bell.get());
}

absl::Status RingEngine::AddSessionFromLoop(uint64_t id, SessionRings rings) {
  const size_t ring_bytes = ring::RingBytes(wire::kRingSlots, wire::kRingSlotSize);
  if (!rings.memory || rings.memory->length() < 2 * ring_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("the rings need ", 2 * ring_bytes, " bytes"));
  }
  auto submissions = ring::SpscRing::Attach(rings.memory->data(), ring_bytes, wire::kRingSlots,
                                            wire::kRingSlotSize);
  auto completions = ring::SpscRing::Attach(rings.memory->data() + ring_bytes, ring_bytes,
                                            wire::kRingSlots, wire::kRingSlotSize);
  if (!submissions.ok()) return submissions.status();
  if (!completions.ok()) return completions.status();
  if (sessions_.count(id) != 0) return absl::AlreadyExistsError("the session has rings already");
  const int bell = rings.daemon_bell.get();
  auto session = std::make_unique<Session>(
      Session{std::move(rings), *std::move(submissions), *std::move(completions), {}});
  if (auto st = loop_.WatchFdFromLoop(bell,
                                      [this, bell] {
                                        uint64_t count;
                                        while (::read(bell, &count, sizeof(count)) > 0) {
                                        }
                                      });
      !st.ok()) {
    return st;
  }
  sessions_[id] = std::move(session);
  return absl::OkStatus();
}

void RingEngine::RemoveSessionFromLoop(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  loop_.UnwatchFdFromLoop(it->second->rings.daemon_bell.get());
  sessions_.erase(it);
}

bool RingEngine::PollFromLoop() {
  bool did_work = false;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (Serve(it->first, *it->second, did_work)) {
      ++it;
    } else {
      loop_.UnwatchFdFromLoop(it->second->rings.daemon_bell.get());
      it = sessions_.erase(it);
    }
  }
  const absl::Time now = absl::Now();
  if (did_work) last_work_ = now;
  // Busy: keep polling a little after the last entry instead of sleeping.
  return did_work || (!sessions_.empty() && now - last_work_ < kSpin);
}

bool RingEngine::PrepareToSleepFromLoop() {
  for (auto& [id, session] : sessions_) {
    if (!session->backlog.empty() || !session->submissions.PrepareToSleep()) return false;
  }
  return true;
}

bool RingEngine::Serve(uint64_t id, Session& session, bool& did_work) {
  session.submissions.Awake();  // whatever woke the loop, this side is awake
  if (!Flush(session))
    return !session.broken;  // the client is behind: no new work until it catches up
  std::vector<uint8_t> entry(session.submissions.max_message());
  while (true) {
    auto n = session.submissions.TryPop(absl::MakeSpan(entry));
    if (!n.ok()) {
      spdlog::warn("session {}: closing its rings: {}", id, n.status().message());
      return false;
    }
    if (*n < 0) break;
    did_work = true;
    auto submission = wire::ReadEntry<wire::Submission>(absl::MakeConstSpan(entry).subspan(0, *n));
    wire::Completion completion;
    if (!submission) {
      completion.code = static_cast<uint32_t>(absl::StatusCode::kInvalidArgument);
    } else {
      completion.op_id = submission->op_id;
      completion.code =
          static_cast<uint32_t>(submission->op == static_cast<uint16_t>(wire::RingOp::kNop)
                                    ? absl::StatusCode::kOk
                                    : absl::StatusCode::kUnimplemented);
    }
    Complete(session, completion);
  }
  if (session.broken) spdlog::warn("session {}: closing its rings: completion ring corrupt", id);
  return !session.broken;
}

void RingEngine::Complete(Session& session, const wire::Completion& completion) {
  session.backlog.push_back(completion);
  Flush(session);
}

// Moves queued completions onto the ring; true when none are left waiting.
bool RingEngine::Flush(Session& session) {
  bool pushed = false;
  while (!session.backlog.empty()) {
    auto ok = session.completions.TryPush(wire::EntryBytes(session.backlog.front()));
    if (!ok.ok()) {
      session.broken = true;
      return false;
    }
    if (!*ok) break;  // full: the client has not taken its completions yet
    session.backlog.pop_front();
    ++ops_completed_;
    pushed = true;
  }
  if (pushed && session.completions.ConsumerNeedsWakeup()) Ring(session.rings.client_bell.get());
  return session.backlog.empty();
}

}  // namespace axon::daemon
