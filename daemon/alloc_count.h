// Heap allocations counted per thread, so that a benchmark can show what the
// engine's hot path allocates per message (axonctl stats:
// ucx_thread_allocations). axond's own operator new (alloc_hooks.cc, linked
// into the axond binary only) counts; elsewhere, as in tests, the count
// stays 0. Allocations by C libraries (UCX's malloc) are not counted.
#pragma once

#include <cstdint>

namespace axon::daemon {

// Whether this binary counts (alloc_hooks.cc is linked in).
bool AllocationsCounted();
// Allocations made by operator new on the calling thread since it started.
uint64_t ThreadAllocations();

namespace internal {
// Called by the counting operator new.
void CountAllocation();
void SetAllocationsCounted();
}  // namespace internal

}  // namespace axon::daemon
