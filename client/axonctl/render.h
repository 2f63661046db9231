// How axonctl prints answers: aligned text for people, or JSON (the proto's
// own field names) with --json.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "axon/v1/admin.pb.h"

namespace axon::ctl {

std::string ToJson(const google::protobuf::Message& message);

std::string RenderHealth(const v1::HealthResponse& health);
std::string RenderNodes(const v1::ListNodesResponse& nodes);
std::string RenderStatus(const v1::StatusResponse& status);
std::string RenderStats(const v1::StatsResponse& stats);
// For `stats --watch`: the UCX thread's busy share between two answers.
std::string RenderBusyShare(const v1::StatsResponse& before, const v1::StatsResponse& now);
std::string RenderSessions(const v1::ListSessionsResponse& sessions);
// Every session's call servers, a row per endpoint and method.
std::string RenderCalls(const v1::ListSessionsResponse& sessions);
// Windows exposed for one-sided transfers, per session: access, holds, and
// operations and bytes by path.
std::string RenderWindows(const v1::ListSessionsResponse& sessions);
std::string RenderPeers(const v1::ListPeersResponse& peers);
std::string RenderPing(const std::string& node, uint64_t size, const v1::PingResponse& ping);

// "3d 4h", "12m 5s", "42s".
std::string FormatDuration(double seconds);

}  // namespace axon::ctl
