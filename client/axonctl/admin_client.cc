#include "client/axonctl/admin_client.h"

#include <grpcpp/client_context.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/rpc/channel.h"
#include "common/rpc/status_convert.h"

namespace axon::ctl {

AdminClient::AdminClient(const std::string& socket_path, std::chrono::milliseconds timeout)
    : stub_(v1::Admin::NewStub(rpc::MakeControlChannel(socket_path))), timeout_(timeout) {}

template <typename Request, typename Response, typename Method>
absl::StatusOr<Response> AdminClient::Call(Method method, const Request& request,
                                           std::chrono::milliseconds extra) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout_ + extra);
  Response response;
  grpc::Status status = (stub_.get()->*method)(&context, request, &response);
  if (!status.ok()) return rpc::FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::HealthResponse> AdminClient::Health() {
  return Call<v1::HealthRequest, v1::HealthResponse>(&v1::Admin::Stub::Health);
}
absl::StatusOr<v1::StatusResponse> AdminClient::Status() {
  return Call<v1::StatusRequest, v1::StatusResponse>(&v1::Admin::Stub::Status);
}
absl::StatusOr<v1::StatsResponse> AdminClient::Stats() {
  return Call<v1::StatsRequest, v1::StatsResponse>(&v1::Admin::Stub::Stats);
}
absl::StatusOr<v1::ListPeersResponse> AdminClient::ListPeers() {
  return Call<v1::ListPeersRequest, v1::ListPeersResponse>(&v1::Admin::Stub::ListPeers);
}
absl::StatusOr<v1::ListNodesResponse> AdminClient::ListNodes() {
  return Call<v1::ListNodesRequest, v1::ListNodesResponse>(&v1::Admin::Stub::ListNodes);
}
absl::StatusOr<v1::ListSessionsResponse> AdminClient::ListSessions() {
  return Call<v1::ListSessionsRequest, v1::ListSessionsResponse>(&v1::Admin::Stub::ListSessions);
}

absl::StatusOr<v1::PingResponse> AdminClient::Ping(const std::string& node, uint32_t count,
                                                   uint64_t size) {
  v1::PingRequest request;
  request.set_node(node);
  request.set_count(count);
  request.set_size(size);
  // Many round trips may take longer than one call's timeout: allow 10 ms each on top.
  return Call<v1::PingRequest, v1::PingResponse>(&v1::Admin::Stub::Ping, request,
                                                 std::chrono::milliseconds(10) * count);
}

absl::Status WaitForPeersUp(AdminClient& a, AdminClient& b, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int up = 0;
    for (AdminClient* admin : {&a, &b}) {
      auto peers = admin->ListPeers();
      if (peers.ok() && peers->peers_size() == 1 && peers->peers(0).state() == "up") ++up;
    }
    if (up == 2) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::UnavailableError(
      absl::StrCat("the two daemons did not connect within ", timeout.count(), " s"));
}

}  // namespace axon::ctl
