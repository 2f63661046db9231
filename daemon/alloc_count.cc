// The per-thread allocation counter (alloc_count.h).
#include "daemon/alloc_count.h"

#include <atomic>

namespace axon::daemon {
namespace {

thread_local uint64_t t_allocations = 0;
std::atomic<bool> g_counted{false};

}  // namespace

bool AllocationsCounted() { return g_counted.load(std::memory_order_relaxed); }
uint64_t ThreadAllocations() { return t_allocations; }

namespace internal {
void CountAllocation() { ++t_allocations; }
void SetAllocationsCounted() { g_counted.store(true, std::memory_order_relaxed); }
}  // namespace internal

}  // namespace axon::daemon
