// Matcher, part: the receive area. Messages with no posted receive land in
// free slots of the receiving session's area, announced in the order they
// took their slots; a full area holds them back (back-pressure on the
// sender).
#include <algorithm>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/engine/matcher.h"

namespace axon::daemon {
namespace {

// `pieces`, back to back, into a NUL-padded name field (cut to fit).
template <size_t N>
void Put(char (&field)[N], std::initializer_list<absl::string_view> pieces) {
  size_t at = 0;
  for (absl::string_view piece : pieces) {
    const size_t n = std::min(piece.size(), N - 1 - at);
    std::memcpy(field + at, piece.data(), n);
    at += n;
  }
}

}  // namespace

void Matcher::Park(const std::string& to, Pending&& send) {
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

bool Matcher::TryArea(const std::string& to, const Pending& send) {
  if (send.tag & wire::kDirectedTagBit) return false;
  const auto owner = sink_.Owner(to);
  if (!owner) return false;
  auto it = areas_.find(*owner);
  if (it == areas_.end()) return false;
  Area& area = it->second;
  if (area.free.empty() || send.length > area.slot_size) return false;
  const uint64_t slot = area.TakeFree();
  wire::Completion arrival{
      .flags = wire::kCompletionArrival, .length = send.length, .tag = send.tag};
  arrival.arrival.slot = slot;
  // Written in place: a string built per arrival was a heap allocation.
  Put(arrival.arrival.endpoint, {to});
  Put(arrival.arrival.source,
      {send.incoming ? absl::string_view(send.incoming->node) : node_name_, "/",
       send.incoming ? absl::string_view(send.incoming->from) : absl::string_view(send.from)});
  const uint64_t sequence = area.landing_base + area.landing.size();
  area.landing.push_back({.slot = slot, .arrival = arrival});
  sink_.LandInArea(send, *owner, area.region, area.region->data() + slot * area.slot_size,
                   sequence);
  return true;
}

void Matcher::Landed(uint64_t session, uint64_t sequence, bool ok) {
  auto it = areas_.find(session);
  if (it == areas_.end()) return;
  Area& area = it->second;
  if (sequence < area.landing_base) return;
  Area::Landing& l = area.landing[sequence - area.landing_base];
  l.done = true;
  l.failed = !ok;
  while (!area.landing.empty() && area.landing.front().done) {
    const Area::Landing& front = area.landing.front();
    if (front.failed) {
      area.PutFree(front.slot);  // nothing arrived: the slot is free again
    } else {
      sink_.Announce(session, front.arrival);
    }
    area.landing.pop_front();
    ++area.landing_base;
  }
}

absl::StatusOr<uint64_t> Matcher::SetArea(uint64_t session, std::shared_ptr<Region> region,
                                          uint64_t slot_size) {
  if (areas_.contains(session)) {
    return absl::FailedPreconditionError("the session has a receive area");
  }
  if (region->on_gpu()) {
    return absl::InvalidArgumentError(
        "the receive area must be host memory (post receives for GPU buffers instead)");
  }
  if (slot_size == 0 || slot_size > region->length()) {
    return absl::InvalidArgumentError(
        absl::StrCat("slots of ", slot_size, " bytes in a region of ", region->length()));
  }
  Area area{.region = std::move(region), .slot_size = slot_size};
  const uint64_t slots = area.region->length() / slot_size;
  area.is_free.resize(slots);
  for (uint64_t i = slots; i > 0; --i) area.PutFree(i - 1);  // slot 0 first
  areas_.emplace(session, std::move(area));
  return slots;
}

void Matcher::Release(uint64_t session, uint64_t slot) {
  auto it = areas_.find(session);
  if (it == areas_.end()) return;
  Area& area = it->second;
  if (slot >= area.is_free.size() || area.is_free[slot]) {
    spdlog::warn("session {}: release of slot {} that is not in use", session, slot);
    return;
  }
  area.PutFree(slot);
  FillArea(session);
}

void Matcher::Claim(uint64_t session, uint64_t slot) {
  auto it = areas_.find(session);
  if (it == areas_.end()) return;
  Area& area = it->second;
  if (slot >= area.is_free.size() || !area.is_free[slot]) {
    spdlog::warn("session {}: claim of slot {} that is not free", session, slot);
    return;
  }
  area.TakeFree(slot);
}

void Matcher::FillArea(uint64_t session) {
  // No area, or no free slot: nothing can move (the common case, checked
  // first: a receive taking a waiting send asks too).
  auto area = areas_.find(session);
  if (area == areas_.end() || area->second.free.empty()) return;
  for (auto& [name, queues] : endpoints_) {
    // Nothing waits, the usual case: no owner lookup, no scratch list.
    if (queues.sends.empty() || sink_.Owner(name) != session) continue;
    // Sources with an earlier message still waiting (few: a list, no tree).
    absl::InlinedVector<std::string, 4> blocked;  // copies: erasing moves the queue
    queues.sends.remove_if([&](Pending& send) {
      const bool behind = std::find(blocked.begin(), blocked.end(), send.from) != blocked.end();
      if (!behind && TryArea(name, send)) return true;
      if (!behind && !(send.tag & wire::kDirectedTagBit)) blocked.push_back(send.from);
      return false;
    });
  }
}

}  // namespace axon::daemon
