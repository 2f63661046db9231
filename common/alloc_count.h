// Heap allocations counted per thread and per process, so that a benchmark
// can show what a hot path allocates: axond's engine per message (axonctl
// stats: ucx_thread_allocations), call-bench's clients per call. The
// counting operator new (alloc_hooks.cc) is linked into those binaries only;
// elsewhere, as in tests and the Python module, the counts stay 0.
// Allocations by C libraries (UCX's malloc) are not counted.
#pragma once

#include <cstdint>

namespace axon {

// Whether this binary counts (alloc_hooks.cc is linked in).
bool AllocationsCounted();
// Allocations made by operator new on the calling thread since it started.
uint64_t ThreadAllocations();
// Allocations made by operator new on every thread of the process.
uint64_t ProcessAllocations();

namespace internal {
// Called by the counting operator new.
void CountAllocation();
void SetAllocationsCounted();
}  // namespace internal

}  // namespace axon
