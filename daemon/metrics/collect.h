// Everything /metrics exports, read from the daemon at scrape time through
// the same snapshots as `axonctl stats`, `peers` and `sessions`, plus the
// engine's operation latencies and failures and the process's own usage.
// Every metric name and label is listed in docs/METRICS.md.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "daemon/daemon_state.h"

namespace axon::daemon::metrics {

// The exposition text; UNAVAILABLE (or DEADLINE_EXCEEDED) when the UCX
// thread does not answer within a second.
absl::StatusOr<std::string> Collect(DaemonState& state);

}  // namespace axon::daemon::metrics
