// ShardPlacement chooses the id of a new session, and with it the engine
// shard that serves it: shard `id % shards` (EngineShards::ShardOf), so
// placing a session is choosing its id. Sessions that name the same
// placement share a shard, so that the messages between them stay on one
// engine thread instead of handing off between two. A placement's first
// session, and a session without one, goes to the shard serving the fewest
// sessions, shard 0 first among equals: a lone client's session is served
// where the connections to other nodes are.
//
// Not thread-safe: SessionManager calls it under its lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace axon::daemon {

class ShardPlacement {
 public:
  explicit ShardPlacement(size_t shards = 1) : sessions_(shards == 0 ? 1 : shards, 0) {}

  size_t shards() const { return sessions_.size(); }
  // The id for a new session naming `placement` ("": none): `next` or the
  // first id after it on the shard chosen. Counted until Remove.
  uint64_t Place(uint64_t next, const std::string& placement);
  // Session `id`, placed under `placement`, closed.
  void Remove(uint64_t id, const std::string& placement);
  // The shard of placement `placement`, or -1 while no session names it.
  int ShardOf(const std::string& placement) const;
  // Sessions served per shard.
  const std::vector<uint64_t>& sessions() const { return sessions_; }

 private:
  struct Group {
    size_t shard = 0;
    uint64_t sessions = 0;
  };
  size_t Fewest() const;

  std::vector<uint64_t> sessions_;  // per shard
  absl::flat_hash_map<std::string, Group> groups_;
};

}  // namespace axon::daemon
