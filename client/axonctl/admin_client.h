// axonctl's view of a daemon: one call per Admin RPC, each with a deadline.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "axon/v1/admin.grpc.pb.h"

namespace axon::ctl {

class AdminClient {
 public:
  AdminClient(const std::string& socket_path, std::chrono::milliseconds timeout);

  absl::StatusOr<v1::HealthResponse> Health();
  absl::StatusOr<v1::StatusResponse> Status();
  absl::StatusOr<v1::StatsResponse> Stats();
  absl::StatusOr<v1::ListPeersResponse> ListPeers();
  absl::StatusOr<v1::ListSessionsResponse> ListSessions();
  absl::StatusOr<v1::ListNodesResponse> ListNodes();
  absl::StatusOr<v1::PingResponse> Ping(const std::string& node, uint32_t count, uint64_t size);

 private:
  template <typename Request, typename Response, typename Method>
  absl::StatusOr<Response> Call(Method method, const Request& request = Request(),
                                std::chrono::milliseconds extra = std::chrono::milliseconds(0));

  std::unique_ptr<v1::Admin::Stub> stub_;
  std::chrono::milliseconds timeout_;
};

// Waits until the daemons behind `a` and `b` (two nodes that are each
// other's only peer, as LocalCluster starts them) both see the other up:
// a remote send fails UNAVAILABLE before.
absl::Status WaitForPeersUp(AdminClient& a, AdminClient& b,
                            std::chrono::seconds timeout = std::chrono::seconds(30));

}  // namespace axon::ctl
