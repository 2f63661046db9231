// libaxon, part: the call pool (pool.h).
#include "client/lib/pool.h"

#include <bit>

#include "absl/strings/str_cat.h"
#include "client/lib/recycled.h"

namespace axon::internal {

struct MemoryPool::Core {
  std::string name;
  Allocator allocate;
  size_t arena_bytes;
  size_t max_bytes;

  mutable std::mutex mu;
  size_t held = 0;                                            // bytes registered
  std::vector<std::shared_ptr<Buffer>> arenas;                // guarded by mu
  size_t arena_used = 0;                                      // of arenas.back()
  std::map<size_t, std::vector<Block>> free;                  // small blocks by class size
  std::multimap<size_t, std::shared_ptr<Buffer>> large_free;  // idle large buffers by size
  std::map<const Buffer*, std::shared_ptr<Buffer>> large_used;

  void Put(const Block& block) {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = large_used.find(block.buffer); it != large_used.end()) {
      large_free.emplace(it->second->size(), std::move(it->second));
      large_used.erase(it);
      return;
    }
    free[block.size].push_back(block);
  }

  // mu held. Frees idle large buffers until `bytes` more fit under max_bytes.
  bool MakeRoom(size_t bytes) {
    while (held + bytes > max_bytes && !large_free.empty()) {
      auto last = std::prev(large_free.end());
      held -= last->second->size();
      large_free.erase(last);
    }
    return held + bytes <= max_bytes;
  }

  absl::Status Exhausted(size_t bytes) const {
    return absl::ResourceExhaustedError(
        absl::StrCat("libaxon's ", name, " call pool holds ", held, " bytes and may hold ",
                     max_bytes, "; a block of ", bytes,
                     " more does not fit (blocks in use are freed when their "
                     "calls end and their tensors are dropped)"));
  }
};

MemoryPool::MemoryPool(std::string name, Allocator allocate, size_t arena_bytes, size_t max_bytes)
    : core_(std::make_shared<Core>()) {
  core_->name = std::move(name);
  core_->allocate = std::move(allocate);
  core_->arena_bytes = arena_bytes;
  core_->max_bytes = max_bytes;
}

size_t MemoryPool::bytes_held() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->held;
}

absl::StatusOr<std::shared_ptr<Block>> MemoryPool::Get(size_t bytes) {
  Core& c = *core_;
  const size_t size = std::bit_ceil(std::max(bytes, kSmallest));
  // One allocation per block handed out: the block, the pool it goes back
  // to and the count share it (a Block with a deleter of its own took two),
  // recycled: blocks are taken on one thread and given back on another.
  struct Lent {
    Lent(std::shared_ptr<Core> c, const Block& b) : core(std::move(c)), block(b) {}
    ~Lent() { core->Put(block); }
    Lent(const Lent&) = delete;
    Lent& operator=(const Lent&) = delete;
    std::shared_ptr<Core> core;
    Block block;
  };
  auto share = [this](const Block& b) {
    auto lent = std::allocate_shared<Lent>(Recycled<Lent>(), core_, b);
    Block* block = &lent->block;
    return std::shared_ptr<Block>(std::move(lent), block);
  };
  std::unique_lock<std::mutex> lock(c.mu);
  if (size <= c.arena_bytes / 4) {
    if (auto it = c.free.find(size); it != c.free.end() && !it->second.empty()) {
      Block b = it->second.back();
      it->second.pop_back();
      return share(b);
    }
    if (c.arenas.empty() || c.arena_bytes - c.arena_used < size) {
      if (!c.MakeRoom(c.arena_bytes)) return c.Exhausted(c.arena_bytes);
      // Registering takes a round trip to the daemon: not under the lock.
      lock.unlock();
      auto arena = c.allocate(c.arena_bytes);
      lock.lock();
      if (!arena.ok()) return arena.status();
      c.held += (*arena)->size();
      c.arenas.push_back(*std::move(arena));
      c.arena_used = 0;
    }
    const Buffer* arena = c.arenas.back().get();
    Block b{static_cast<uint8_t*>(arena->data()) + c.arena_used, arena, c.arena_used, size};
    c.arena_used += size;
    return share(b);
  }
  // Large: an idle buffer of at least `bytes` and at most twice that, or a new one.
  const size_t want = (bytes + (size_t{1} << 20) - 1) & ~((size_t{1} << 20) - 1);
  if (auto it = c.large_free.lower_bound(want); it != c.large_free.end() && it->first <= 2 * want) {
    std::shared_ptr<Buffer> buffer = std::move(it->second);
    c.large_free.erase(it);
    const Buffer* raw = buffer.get();
    c.large_used.emplace(raw, std::move(buffer));
    return share(Block{raw->data(), raw, 0, raw->size()});
  }
  if (!c.MakeRoom(want)) return c.Exhausted(want);
  c.held += want;  // reserved while registering without the lock
  lock.unlock();
  auto buffer = c.allocate(want);
  lock.lock();
  if (!buffer.ok()) {
    c.held -= want;
    return buffer.status();
  }
  const Buffer* raw = buffer->get();
  c.large_used.emplace(raw, *std::move(buffer));
  return share(Block{raw->data(), raw, 0, raw->size()});
}

}  // namespace axon::internal
