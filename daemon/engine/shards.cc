#include "daemon/engine/shards.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/alloc_count.h"
#include "common/log.h"
#include "daemon/peer/shard_peers.h"

namespace axon::daemon {

int EngineShards::CountFor(int configured) {
  if (configured > 0) return configured;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(cores / 4, 1, 8);
}

absl::StatusOr<std::unique_ptr<EngineShards>> EngineShards::Start(
    ucx::Loop& main, std::vector<std::unique_ptr<ucx::Loop>> more, SessionManager& sessions,
    Options options, std::vector<std::unique_ptr<ShardPeers>> shard_peers) {
  std::unique_ptr<EngineShards> shards(new EngineShards);
  shards->loops_.push_back(&main);
  for (auto& loop : more) shards->loops_.push_back(loop.get());
  shards->own_loops_ = std::move(more);
  constexpr absl::Duration kStartTimeout = absl::Seconds(30);
  for (size_t i = 0; i < shards->loops_.size(); ++i) {
    ucx::Loop* loop = shards->loops_[i];
    // Shard i's links (made on its loop before the peer plane started). The
    // task owns them until it runs: a Call that timed out leaks nothing.
    std::unique_ptr<ShardPeers> links_here =
        i > 0 && i - 1 < shard_peers.size() ? std::move(shard_peers[i - 1]) : nullptr;
    // Built on its own thread, as it is used and destroyed there.
    auto made = loop->Call<std::unique_ptr<RingEngine>>(
        [loop, main_loop = &main, &sessions, options, i,
         own_links = std::move(links_here)]() mutable {
          auto engine = std::make_unique<RingEngine>(*loop, sessions, options.node_name,
                                                     options.max_in_flight);
          if (i == 0 && options.peers != nullptr) {
            engine->AttachPeersFromLoop(*options.peers, options.limits);
          }
          if (own_links != nullptr && options.shard_links != nullptr) {
            // A failed link drops the peer's connection on shard 0, if it
            // is still the one the link was made for.
            PeerManager* links = options.shard_links;
            own_links->SetDropFromLoop([main_loop, links](const std::string& node,
                                                          uint64_t connection,
                                                          const std::string& why) {
              main_loop->Post(
                  [links, node, connection, why] { links->DropFromLoopIf(node, connection, why); });
            });
            // Numbered apart from the other shards' messages (Limits).
            RemotePath::Limits limits = options.limits;
            limits.first_message_id = (uint64_t{i} << 48) + 1;
            engine->AttachShardPeersFromLoop(std::move(own_links), limits);
          }
          if (auto st =
                  engine->StartCopyThreadsFromLoop(options.copy_threads, options.copy_min_bytes);
              !st.ok()) {
            spdlog::warn("engine shard {}: no copy threads ({}): local copies run on its thread", i,
                         st.message());
          }
          return engine;
        },
        kStartTimeout);
    if (!made.ok()) return made.status();
    shards->engines_.push_back(*std::move(made));
  }
  // Every engine exists: each may now reach the others, then serve.
  auto joined = shards->OnEach<bool>(kStartTimeout, [raw = shards.get()](size_t i, RingEngine& e) {
    if (raw->size() > 1) e.JoinFromLoop(*raw, i);
    raw->loop(i).SetPollerFromLoop([&e] { return e.PollFromLoop(); },
                                   [&e] { return e.PrepareToSleepFromLoop(); });
    return true;
  });
  if (!joined.ok()) return joined.status();
  if (options.shard_links != nullptr && shards->size() > 1) {
    EngineShards* raw = shards.get();
    PeerManager* links = options.shard_links;
    auto linked = main.Call<absl::Status>([raw, links] { return raw->LinkShardsFromLoop(*links); },
                                          kStartTimeout);
    if (!linked.ok()) return linked.status();
    if (!linked->ok()) return *linked;
    shards->shard_links_ = links;
  }
  return shards;
}

template <typename Fn>
void EngineShards::PostToLinks(size_t shard, Fn fn) {
  RingEngine* e = engines_[shard].get();
  loops_[shard]->Post([e, fn = std::move(fn)]() mutable {
    if (ShardPeers* p = e->shard_peers()) fn(*p);
  });
}

absl::Status EngineShards::LinkShardsFromLoop(PeerManager& peers) {
  AXON_DCHECK_ON_LOOP();
  // Posted in the order shard 0 sees them: a peer's down before its next up.
  // The shards' engines outlive the fanout (the destructor clears it first).
  peers.SetShardFanoutFromLoop(
      ShardFanout{.up =
                      [this](size_t shard, const ShardLinkInfo& link) {
                        if (shard < size())
                          PostToLinks(shard, [link](ShardPeers& p) { p.UpFromLoop(link); });
                      },
                  .down =
                      [this](const std::string& node, const std::string& why) {
                        for (size_t k = 1; k < size(); ++k) {
                          PostToLinks(k, [node, why](ShardPeers& p) { p.DownFromLoop(node, why); });
                        }
                      },
                  .tick =
                      [this] {
                        for (size_t k = 1; k < size(); ++k) {
                          PostToLinks(k, [](ShardPeers& p) { p.TickFromLoop(); });
                        }
                      }});
  return absl::OkStatus();
}

EngineShards::~EngineShards() {
  constexpr absl::Duration kStopTimeout = absl::Seconds(30);
  // Shard 0's peer plane stops telling the others first.
  if (shard_links_ != nullptr) {
    auto cleared = loops_[0]->Call<bool>(
        [links = shard_links_] {
          links->SetShardFanoutFromLoop({});
          return true;
        },
        kStopTimeout);
    if (!cleared.ok()) spdlog::error("shutdown: shard 0 did not stop its shard links in time");
  }
  // No shard posts to another from here on, and none serves rings.
  auto closed = OnEach<bool>(kStopTimeout, [this](size_t i, RingEngine& e) {
    loop(i).SetPollerFromLoop(nullptr, nullptr);
    e.CloseFromLoop();
    return true;
  });
  // Then each engine goes on its own thread, after the tasks posted to it
  // before; what other shards handed it and it has not taken goes with it.
  for (size_t i = 0; i < loops_.size() && i < engines_.size(); ++i) {
    auto done = loops_[i]->Call<bool>(
        [engine = std::move(engines_[i])]() mutable {
          engine.reset();
          return true;
        },
        kStopTimeout);
    if (!done.ok() || !closed.ok()) {
      spdlog::error("shutdown: engine shard {} did not stop in time", i);
    }
  }
}

template <typename T, typename Fn>
absl::StatusOr<std::vector<T>> EngineShards::OnEach(absl::Duration timeout, Fn fn) const {
  std::vector<T> out;
  // Every read of this object comes before the last Call: only the posts
  // order a caller's reads before the destructor (on another thread) frees
  // it. gRPC's own ordering of its threads is invisible to TSan, which
  // reported the loop's last size() check racing with the delete.
  const size_t n = std::min(loops_.size(), engines_.size());
  for (size_t i = 0; i < n; ++i) {
    RingEngine* engine = engines_[i].get();
    if (engine == nullptr) continue;
    // `fn` by value: a call that timed out may still run later.
    auto got = loops_[i]->Call<T>([fn, i, engine] { return fn(i, *engine); }, timeout);
    if (!got.ok()) {
      return absl::Status(got.status().code(),
                          absl::StrCat("engine shard ", i, ": ", got.status().message()));
    }
    out.push_back(*std::move(got));
  }
  return out;
}

absl::Status EngineShards::AddSession(uint64_t id, SessionRings rings, absl::Duration timeout) {
  const size_t shard = ShardOf(id);
  RingEngine* engine = engines_[shard].get();
  auto added = loops_[shard]->Call<absl::Status>(
      [engine, id, rings = std::move(rings)]() mutable {
        return engine->AddSessionFromLoop(id, std::move(rings));
      },
      timeout);
  if (!added.ok()) return added.status();
  return *added;
}

void EngineShards::RemoveSession(uint64_t id) {
  const size_t shard = ShardOf(id);
  loops_[shard]->Post([engine = engines_[shard].get(), id] { engine->RemoveSessionFromLoop(id); });
}

absl::StatusOr<GpuTraffic> EngineShards::Gpu(absl::Duration timeout) const {
  auto each =
      OnEach<GpuTraffic>(timeout, [](size_t, RingEngine& e) { return e.GpuTrafficFromLoop(); });
  if (!each.ok()) return each.status();
  GpuTraffic sum;
  for (const GpuTraffic& g : *each) sum += g;
  return sum;
}

absl::StatusOr<std::map<uint64_t, SessionTraffic>> EngineShards::Traffic(
    absl::Duration timeout) const {
  auto each = OnEach<std::map<uint64_t, SessionTraffic>>(
      timeout, [](size_t, RingEngine& e) { return e.TrafficFromLoop(); });
  if (!each.ok()) return each.status();
  std::map<uint64_t, SessionTraffic> all;
  for (auto& m : *each) all.merge(m);  // a session is on one shard
  return all;
}

absl::StatusOr<std::pair<std::map<uint64_t, SessionTraffic>, OperationStats>>
EngineShards::TrafficAndOperations(absl::Duration timeout) const {
  using Both = std::pair<std::map<uint64_t, SessionTraffic>, OperationStats>;
  auto each = OnEach<Both>(timeout, [](size_t, RingEngine& e) {
    return Both{e.TrafficFromLoop(), e.OperationStatsFromLoop()};
  });
  if (!each.ok()) return each.status();
  Both sum;
  for (Both& b : *each) {
    sum.first.merge(b.first);  // a session is on one shard
    sum.second.Merge(b.second);
  }
  return sum;
}

absl::StatusOr<uint64_t> EngineShards::Allocations(absl::Duration timeout) const {
  auto each = OnEach<uint64_t>(timeout, [](size_t, RingEngine&) { return ThreadAllocations(); });
  if (!each.ok()) return each.status();
  uint64_t sum = 0;
  for (uint64_t n : *each) sum += n;
  return sum;
}

uint64_t EngineShards::wakeups() const {
  uint64_t sum = 0;
  for (const ucx::Loop* loop : loops_) sum += loop->wakeups();
  return sum;
}

uint64_t EngineShards::tasks_run() const {
  uint64_t sum = 0;
  for (const ucx::Loop* loop : loops_) sum += loop->tasks_run();
  return sum;
}

absl::Duration EngineShards::busy() const {
  absl::Duration sum;
  for (const ucx::Loop* loop : loops_) sum += loop->busy();
  return sum;
}

}  // namespace axon::daemon
