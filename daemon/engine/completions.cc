// RingEngine, part: completions. Every operation a client puts on its
// submission ring gets exactly one completion (a quiet send that succeeds
// none: wire::kSubmissionQuiet), pushed onto its completion ring at once
// when nothing waits before it and queued otherwise (a client behind on its
// ring); the doorbell is checked once per poll.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/string_view.h"
#include "common/log.h"
#include "daemon/engine/ring_engine.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon {

namespace {

// Wakes the client sleeping on its completion ring.
void Ring(int bell) {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(bell, &one, sizeof(one));
}

wire::Completion MakeCompletion(uint64_t id, uint64_t op_id, const absl::Status& status,
                                uint64_t length, uint64_t tag) {
  wire::Completion completion{
      .op_id = op_id, .code = static_cast<uint32_t>(status.code()), .length = length, .tag = tag};
  if (!status.ok()) {
    spdlog::debug("session {} op {}: {}", id, op_id, status.message());
    const absl::string_view why = status.message();
    std::memcpy(completion.message, why.data(),
                std::min(why.size(), wire::kCompletionMessageSize - 1));
  }
  return completion;
}

void CountIn(SessionTraffic& t, bool sent, uint64_t bytes) {
  (sent ? t.messages_sent : t.messages_received)++;
  (sent ? t.bytes_sent : t.bytes_received) += bytes;
}

}  // namespace

void RingEngine::Complete(uint64_t id, uint64_t op_id, absl::Status status, uint64_t length,
                          uint64_t tag) {
  if (TookWindowCompletion(id, op_id, status)) return;
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    HopCompletion(id, std::nullopt, op_id, std::move(status), length, tag);
    return;
  }
  Complete(*it->second, MakeCompletion(id, op_id, status, length, tag));
}

void RingEngine::CompleteMessage(uint64_t id, bool sent, uint64_t op_id, absl::Status status,
                                 uint64_t length, uint64_t tag, bool quiet) {
  if (TookWindowCompletion(id, op_id, status)) return;
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    HopCompletion(id, sent, op_id, std::move(status), length, tag, quiet);
    return;
  }
  Session& session = *it->second;
  if (!status.ok()) {
    wire::Completion failed = MakeCompletion(id, op_id, status, length, tag);
    if (quiet) failed.flags |= wire::kCompletionQuiet;
    Complete(session, failed);
    return;
  }
  CountIn(session.traffic, sent, length);
  if (!session.sampled.empty()) EndSample(session, op_id);
  deadlines_.Done(id, op_id);
  if (quiet) {  // done, and nobody is told: the call's reply says so
    --session.traffic.in_flight;
    return;
  }
  // The common case goes onto the ring as its 32 bytes: a wire::Completion
  // would zero-fill its 200-byte message field first, once per message.
  if (session.backlog_empty() && !session.broken) {
    if (Pushed(session, wire::OkCompletionBytes(op_id, length, tag))) {
      --session.traffic.in_flight;  // as Complete does
      return;
    }
  }
  Complete(session, MakeCompletion(id, op_id, status, length, tag));
}

void RingEngine::Count(uint64_t id, bool sent, uint64_t bytes) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  CountIn(it->second->traffic, sent, bytes);
}

std::map<uint64_t, SessionTraffic> RingEngine::TrafficFromLoop() const {
  AXON_DCHECK_ON_LOOP();
  std::map<uint64_t, SessionTraffic> out;
  for (const auto& [id, session] : sessions_) {
    SessionTraffic& t = out[id] = session->traffic;
    t.submissions_queued = session->submissions.size();
    t.completions_queued =
        session->completions.size() + (session->backlog.size() - session->backlog_next);
  }
  return out;
}

void RingEngine::Sample(Session& session, const wire::Submission& submission) {
  // Bounded: a client with thousands in flight keeps at most this many timed.
  constexpr size_t kMaxSampled = 256;
  if (submission.op_id % OperationStats::kLatencySample != 0) return;
  const auto op = static_cast<wire::RingOp>(submission.op);
  const bool send = op == wire::RingOp::kSend;
  if (!send && op != wire::RingOp::kPostRecv) return;
  if (send && (submission.flags & wire::kSubmissionMore) != 0) return;  // a part, not the send
  if (session.sampled.size() >= kMaxSampled) return;
  session.sampled.push_back({submission.op_id, send, std::chrono::steady_clock::now()});
}

void RingEngine::EndSample(Session& session, uint64_t op_id) {
  if (op_id % OperationStats::kLatencySample != 0) return;
  auto it = std::find_if(session.sampled.begin(), session.sampled.end(),
                         [op_id](const Session::Sampled& s) { return s.op_id == op_id; });
  if (it == session.sampled.end()) return;
  const double micros =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - it->started)
          .count();
  (it->send ? op_stats_.send_latency : op_stats_.receive_latency).Add(micros);
  *it = session.sampled.back();
  session.sampled.pop_back();
}

void RingEngine::Complete(Session& session, const wire::Completion& completion) {
  if ((completion.flags & wire::kCompletionArrival) == 0) {
    --session.traffic.in_flight;
    deadlines_.Done(session.id, completion.op_id);
    if (!session.sampled.empty()) EndSample(session, completion.op_id);
    if (completion.code != 0 && completion.code < op_stats_.failed.size()) {
      ++op_stats_.failed[completion.code];
    }
  }
  // Onto the ring at once when nothing waits before it (a spinning client
  // sees it now); the doorbell is the next poll's (PollFromLoop flushes every
  // session), so that a poll's completions to one client cost one check.
  if (session.backlog_empty() && !session.broken &&
      Pushed(session, wire::CompletionBytes(completion))) {
    return;
  }
  if (session.broken) return;
  session.backlog.push_back(completion);  // the ring is full: in order, behind the others
}

bool RingEngine::Pushed(Session& session, absl::Span<const uint8_t> bytes) {
  auto ok = session.completions.TryPush(bytes);
  if (!ok.ok()) {
    session.broken = true;  // closes at the next poll
    return false;
  }
  if (!*ok) return false;
  ++ops_completed_;
  session.unrung = true;
  return true;
}

// Moves queued completions onto the ring; true when none are left waiting.
bool RingEngine::Flush(Session& session) {
  bool pushed = std::exchange(session.unrung, false);
  while (!session.backlog_empty()) {
    auto ok =
        session.completions.TryPush(wire::CompletionBytes(session.backlog[session.backlog_next]));
    if (!ok.ok()) {
      session.broken = true;
      return false;
    }
    if (!*ok) break;  // full: the client has not taken its completions yet
    ++session.backlog_next;
    ++ops_completed_;
    pushed = true;
  }
  if (pushed && session.completions.ConsumerNeedsWakeup()) Ring(session.rings.client_bell.get());
  if (!session.backlog_empty()) return false;
  session.backlog.clear();  // keeps its capacity
  session.backlog_next = 0;
  return true;
}

}  // namespace axon::daemon
