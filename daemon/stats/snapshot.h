// What `axonctl stats`, `peers` and `sessions` show, and what the metrics
// endpoint exports: one way of reading the daemon for both. Each may wait
// up to a second for the UCX thread (the engine's and peers' counters live
// there); UNAVAILABLE or DEADLINE_EXCEEDED when it does not answer.
#pragma once

#include "absl/status/status.h"
#include "axon/v1/admin.pb.h"
#include "daemon/daemon_state.h"

namespace axon::daemon {

// How long a snapshot waits for the UCX thread.
inline constexpr absl::Duration kSnapshotTimeout = absl::Seconds(1);

absl::Status FillStats(DaemonState& state, v1::StatsResponse& out);
absl::Status FillPeers(DaemonState& state, v1::ListPeersResponse& out);
absl::Status FillSessions(DaemonState& state, v1::ListSessionsResponse& out);
absl::Status FillNodes(DaemonState& state, v1::ListNodesResponse& out);

}  // namespace axon::daemon
