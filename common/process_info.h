// Facts about a process, read from /proc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace axon {

// The supplementary groups of process `pid` ("Groups:" in /proc/PID/status).
absl::StatusOr<std::vector<gid_t>> SupplementaryGroups(pid_t pid);

// What this process uses now.
struct ProcessUsage {
  uint64_t resident_bytes = 0;  // VmRSS
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;  // the soft RLIMIT_NOFILE
  uint64_t threads = 0;
  double cpu_seconds = 0;  // user + system, all threads (clock ticks' precision)
};
absl::StatusOr<ProcessUsage> OwnUsage();
// The same for another process (max_fds left 0); NOT_FOUND once it is gone.
absl::StatusOr<ProcessUsage> UsageOf(pid_t pid);
// File descriptors this process holds open.
absl::StatusOr<uint64_t> OpenFdCount();

}  // namespace axon
