#include "daemon/session/shard_placement.h"

#include <algorithm>

namespace axon::daemon {

size_t ShardPlacement::Fewest() const {
  // The first of equals: shard 0 before the others, as it holds the
  // connections to other nodes (a session there sends to them without a
  // hop between engine threads).
  return static_cast<size_t>(std::min_element(sessions_.begin(), sessions_.end()) -
                             sessions_.begin());
}

uint64_t ShardPlacement::Place(uint64_t next, const std::string& placement) {
  const size_t n = sessions_.size();
  size_t shard = Fewest();
  if (!placement.empty() && n > 1) {
    auto [it, made] = groups_.try_emplace(placement);
    if (made) it->second.shard = shard;
    ++it->second.sessions;
    shard = it->second.shard;
  }
  const uint64_t id = next + (shard + n - next % n) % n;
  ++sessions_[id % n];
  return id;
}

void ShardPlacement::Remove(uint64_t id, const std::string& placement) {
  uint64_t& count = sessions_[id % sessions_.size()];
  if (count > 0) --count;
  if (placement.empty()) return;
  if (auto it = groups_.find(placement); it != groups_.end() && --it->second.sessions == 0) {
    groups_.erase(it);
  }
}

int ShardPlacement::ShardOf(const std::string& placement) const {
  auto it = groups_.find(placement);
  return it == groups_.end() ? -1 : static_cast<int>(it->second.shard);
}

}  // namespace axon::daemon
