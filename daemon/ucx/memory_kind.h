// Where a buffer handed to UCX lives. UCX can detect it, but its memory-type
// cache only knows allocations it saw being made: memory opened from another
// process's CUDA IPC handle looks like host memory to it. Callers that know
// say so.
#pragma once

namespace axon::ucx {

enum class MemoryKind { kHost, kCuda };

}  // namespace axon::ucx
