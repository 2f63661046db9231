// The allocation counters (alloc_count.h). Each thread counts in a slot of
// its own, a cache line apart from the others: nothing shared is written
// per allocation. Threads past the slots' number share them (an atomic add
// keeps those counts whole).
#include "common/alloc_count.h"

#include <array>
#include <atomic>

namespace axon {
namespace {

struct alignas(64) Slot {
  std::atomic<uint64_t> count{0};
};
constexpr size_t kSlots = 256;
std::array<Slot, kSlots> g_slots;
std::atomic<size_t> g_next_slot{0};
std::atomic<bool> g_counted{false};

thread_local uint64_t t_allocations = 0;
thread_local Slot* t_slot = nullptr;

}  // namespace

bool AllocationsCounted() { return g_counted.load(std::memory_order_relaxed); }
uint64_t ThreadAllocations() { return t_allocations; }
uint64_t ProcessAllocations() {
  uint64_t total = 0;
  for (const Slot& s : g_slots) total += s.count.load(std::memory_order_relaxed);
  return total;
}

namespace internal {
void CountAllocation() {
  ++t_allocations;
  if (t_slot == nullptr) t_slot = &g_slots[g_next_slot.fetch_add(1) % kSlots];
  t_slot->count.fetch_add(1, std::memory_order_relaxed);
}
void SetAllocationsCounted() { g_counted.store(true, std::memory_order_relaxed); }
}  // namespace internal

}  // namespace axon
