// Facts about another process, read from /proc.
#pragma once

#include <sys/types.h>

#include <vector>

#include "absl/status/statusor.h"

namespace axon {

// The supplementary groups of process `pid` ("Groups:" in /proc/PID/status).
absl::StatusOr<std::vector<gid_t>> SupplementaryGroups(pid_t pid);

}  // namespace axon
