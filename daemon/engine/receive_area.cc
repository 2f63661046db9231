// RingEngine, part: the receive area. Messages with no posted receive land
// in free slots of the receiving session's area, announced in send order; a
// full area holds them back (back-pressure on the sender).
#include <algorithm>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/engine/ring_engine.h"

namespace axon::daemon {

void RingEngine::Park(const std::string& to, Pending send) {
  EndpointQueues& queues = QueuesOf(to);
  // The area must not let it overtake an earlier message on the same pair:
  // one from the same endpoint here, or the same endpoint of the same node.
  // Directed messages wait for their own receive and hold nothing back.
  const auto same_source = [&send](const Pending& s) {
    if (s.tag & wire::kDirectedTagBit) return false;
    if (s.incoming || send.incoming) {
      return s.incoming && send.incoming && s.incoming->from == send.incoming->from &&
             s.incoming->node == send.incoming->node;
    }
    return s.from == send.from;
  };
  const bool behind = queues.sends.any_of(same_source);
  if (!behind && TryArea(to, send)) return;
  queues.sends.push_back(std::move(send));  // waits for a receive or a slot: back-pressure
}

bool RingEngine::TryArea(const std::string& to, Pending& send) {
  if (send.tag & wire::kDirectedTagBit) return false;
  const auto owner = Owner(to);
  if (!owner) return false;
  auto it = sessions_.find(*owner);
  if (it == sessions_.end() || !it->second->area) return false;
  Area& area = *it->second->area;
  if (area.free.empty() || send.length > area.slot_size) return false;
  const uint64_t slot = area.free.back();
  area.free.pop_back();
  uint8_t* into = area.region->data() + slot * area.slot_size;
  const uint64_t id = *owner;
  wire::Completion arrival{
      .op_id = slot, .flags = wire::kCompletionArrival, .length = send.length, .tag = send.tag};
  // The receiving endpoint and the sender's "node/endpoint": both fit,
  // 63 + 1 + 127 < 200.
  // Written in place: a string built per arrival was a heap allocation.
  const absl::string_view pieces[] = {
      to, "\n", send.incoming ? absl::string_view(send.incoming->node) : node_name_, "/",
      send.incoming ? absl::string_view(send.incoming->from) : absl::string_view(send.from)};
  size_t at = 0;
  for (absl::string_view piece : pieces) {
    const size_t n = std::min(piece.size(), wire::kCompletionMessageSize - 1 - at);
    std::memcpy(arrival.message + at, piece.data(), n);
    at += n;
  }
  const uint64_t sequence = area.landing_base + area.landing.size();
  area.landing.push_back({.slot = slot, .arrival = arrival});
  if (send.incoming) {
    auto landed = [this, id, sequence, length = send.length](absl::Status st) {
      if (st.ok()) Count(id, /*sent=*/false, length);
      Landed(id, sequence, st.ok());
    };
    if (remote_->LandNowFromLoop(*send.incoming, *area.region, into)) {
      landed(absl::OkStatus());  // no std::function on the common path
      return true;
    }
    remote_->LandFromLoop(send.incoming, area.region, into, std::move(landed));
    return true;
  }
  if (CopyLocalNow(send, *area.region, into)) {
    Count(id, /*sent=*/false, send.length);
    CompleteMessage(send.session, /*sent=*/true, send.op_id, absl::OkStatus(), send.length,
                    send.tag);
    Landed(id, sequence, true);
    return true;
  }
  CopyLocal(send, area.region, into,
            [this, id, sequence, from = send.session, op_id = send.op_id, length = send.length,
             tag = send.tag](absl::Status st) {
              if (st.ok()) Count(id, /*sent=*/false, length);
              CompleteMessage(from, /*sent=*/true, op_id, st, length, tag);
              Landed(id, sequence, st.ok());
            });
  return true;
}

void RingEngine::Landed(uint64_t id, uint64_t sequence, bool ok) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || !it->second->area) return;
  Session& session = *it->second;
  Area& area = *session.area;
  if (sequence < area.landing_base) return;
  Area::Landing& l = area.landing[sequence - area.landing_base];
  l.done = true;
  l.failed = !ok;
  while (!area.landing.empty() && area.landing.front().done) {
    const Area::Landing& front = area.landing.front();
    if (front.failed) {
      area.free.push_back(front.slot);  // nothing arrived: the slot is free again
    } else {
      Complete(session, front.arrival);
    }
    area.landing.pop_front();
    ++area.landing_base;
  }
}

void RingEngine::SetArea(uint64_t id, Session& session, const wire::Submission& submission) {
  auto fail = [&](absl::Status st) { Complete(id, submission.op_id, std::move(st)); };
  if (session.area) return fail(absl::FailedPreconditionError("the session has a receive area"));
  std::shared_ptr<Region> region = sessions_manager_.FindRegion(id, submission.region);
  if (!region) {
    return fail(absl::InvalidArgumentError("unknown region " + std::to_string(submission.region)));
  }
  if (region->on_gpu()) {
    return fail(absl::InvalidArgumentError(
        "the receive area must be host memory (post receives for GPU buffers instead)"));
  }
  if (submission.length == 0 || submission.length > region->length()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("slots of ", submission.length, " bytes in a region of ", region->length())));
  }
  Area area{.region = std::move(region), .slot_size = submission.length};
  const uint64_t slots = area.region->length() / area.slot_size;
  for (uint64_t i = slots; i > 0; --i) area.free.push_back(i - 1);  // slot 0 first
  session.area = std::move(area);
  Complete(id, submission.op_id, absl::OkStatus(), slots);
  FillArea(id);
}

void RingEngine::Release(uint64_t id, Session& session, const wire::Submission& submission) {
  // No completion: a release cannot fail in a way the client could act on.
  --session.traffic.in_flight;
  if (!session.area) return;
  const uint64_t slots = session.area->region->length() / session.area->slot_size;
  if (submission.region >= slots || std::find(session.area->free.begin(), session.area->free.end(),
                                              submission.region) != session.area->free.end()) {
    spdlog::warn("session {}: release of slot {} that is not in use", id, submission.region);
    return;
  }
  session.area->free.push_back(submission.region);
  FillArea(id);
}

void RingEngine::Claim(uint64_t id, Session& session, const wire::Submission& submission) {
  --session.traffic.in_flight;  // no completion, as for a release
  if (!session.area) return;
  auto& free = session.area->free;
  auto it = std::find(free.begin(), free.end(), submission.region);
  if (it == free.end()) {
    spdlog::warn("session {}: claim of slot {} that is not free", id, submission.region);
    return;
  }
  free.erase(it);
}

void RingEngine::FillArea(uint64_t id) {
  for (auto& [name, queues] : endpoints_) {
    // Nothing waits, the usual case: no owner lookup, no scratch list.
    if (queues.sends.empty() || sessions_manager_.EndpointOwner(name) != id) continue;
    // Sources with an earlier message still waiting (few: a list, no tree).
    absl::InlinedVector<std::string, 4> blocked;  // copies: erasing moves the queue
    queues.sends.remove_if([&](Pending& send) {
      if (std::find(blocked.begin(), blocked.end(), send.from) == blocked.end() &&
          TryArea(name, send)) {
        return true;
      }
      if (!(send.tag & wire::kDirectedTagBit)) blocked.push_back(send.from);
      return false;
    });
  }
}

}  // namespace axon::daemon
