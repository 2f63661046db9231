// EngineShards: the engine's threads. Each shard is a ucx::Loop with a
// RingEngine of its own, and serves the rings of the sessions whose id it
// is given (id modulo the count), so that clients spread over cores instead
// of queueing on one thread. Shard 0 runs on the loop that holds the peer
// plane (PeerManager). With shard links (engine.remote: own), shard k > 0
// has a peer plane of its own (ShardPeers), fed by shard 0's: its sessions'
// messages to a peer's shard k go on its own endpoints, and come back on
// them; the rest to and from other nodes goes through shard 0.
//
// An endpoint's messages are matched by the shard that serves the session
// that bound it; work for another shard's session hops there (hops.cc), in
// order per pair of shards, so the order of one sender's messages holds.
//
// Built on its loops' threads, used through the thread-safe calls below,
// and torn down on them: every shard stops posting to the others first, then
// the tasks already posted run, then each engine goes on its own thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/engine/remote_path.h"
#include "daemon/engine/ring_engine.h"
#include "daemon/peer/peer_manager.h"
#include "daemon/peer/peer_plane.h"
#include "daemon/session/session_manager.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon {

class ShardPeers;

class EngineShards {
 public:
  struct Options {
    std::string node_name;
    uint64_t max_in_flight = 0;  // per session (sessions.max_in_flight)
    // Copy threads per shard for large local copies, from this size on.
    int copy_threads = 1;
    uint64_t copy_min_bytes = 0;
    // The peer plane (on loop 0) and the remote path's limits; null: none.
    PeerPlane* peers = nullptr;
    // Set: shards 1..N-1 get links of their own from it (the same plane).
    PeerManager* shard_links = nullptr;
    RemotePath::Limits limits;
  };

  // The shard count for engine.shards `configured` (0: a quarter of the
  // cores, from 1 to 8).
  static int CountFor(int configured);

  // One shard per loop: `main` is shard 0 (its owner keeps it), `more` are
  // the others, which the shards own. `shard_peers[k - 1]`, made on
  // more[k - 1]'s loop, is shard k's (with options.shard_links). Returns
  // once every engine is built.
  static absl::StatusOr<std::unique_ptr<EngineShards>> Start(
      ucx::Loop& main, std::vector<std::unique_ptr<ucx::Loop>> more, SessionManager& sessions,
      Options options, std::vector<std::unique_ptr<ShardPeers>> shard_peers = {});
  ~EngineShards();
  EngineShards(const EngineShards&) = delete;
  EngineShards& operator=(const EngineShards&) = delete;

  size_t size() const { return loops_.size(); }
  size_t ShardOf(uint64_t session) const { return session % loops_.size(); }
  ucx::Loop& loop(size_t shard) const { return *loops_[shard]; }
  // Use on loop(shard)'s thread only.
  RingEngine& engine(size_t shard) const { return *engines_[shard]; }

  // Thread-safe; not from a shard's thread (they wait for the shards).
  // Serves session `id`'s rings on its shard.
  absl::Status AddSession(uint64_t id, SessionRings rings, absl::Duration timeout);
  // Stops serving session `id` and drops what waits for it on every shard.
  void RemoveSession(uint64_t id);
  absl::StatusOr<GpuTraffic> Gpu(absl::Duration timeout) const;
  absl::StatusOr<std::map<uint64_t, SessionTraffic>> Traffic(absl::Duration timeout) const;
  // Both of a scrape's figures in one visit to each shard.
  absl::StatusOr<std::pair<std::map<uint64_t, SessionTraffic>, OperationStats>>
  TrafficAndOperations(absl::Duration timeout) const;
  // Heap allocations made on the shards' threads since they started.
  absl::StatusOr<uint64_t> Allocations(absl::Duration timeout) const;
  // The loops' figures, summed over the shards.
  uint64_t wakeups() const;
  uint64_t tasks_run() const;
  absl::Duration busy() const;

 private:
  EngineShards() = default;
  // Runs `fn(shard, engine)` on every shard's thread, one after the other,
  // and collects the results.
  template <typename T, typename Fn>
  absl::StatusOr<std::vector<T>> OnEach(absl::Duration timeout, Fn fn) const;

  // Hooks shard 0's peer plane to the other shards' (shard links).
  absl::Status LinkShardsFromLoop(PeerManager& peers);
  // Runs `fn(links)` on shard `shard`'s loop with its ShardPeers, if any.
  template <typename Fn>
  void PostToLinks(size_t shard, Fn fn);

  std::vector<ucx::Loop*> loops_;
  std::vector<std::unique_ptr<ucx::Loop>> own_loops_;  // loops_[1..]
  PeerManager* shard_links_ = nullptr;                 // told the shards of its peers
  // Each destroyed on its own loop, in the destructor's body.
  std::vector<std::unique_ptr<RingEngine>> engines_;
};

}  // namespace axon::daemon
