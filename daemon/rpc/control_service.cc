#include "daemon/rpc/control_service.h"

#include "absl/strings/str_cat.h"
#include "common/rpc/status_convert.h"
#include "common/version.h"
#include "daemon/rpc/control_server.h"

namespace axon::daemon::rpc {

grpc::Status ControlService::Attach(grpc::ServerContext* context, const v1::AttachRequest* request,
                                    v1::AttachResponse* response) {
  state_.rpc_stats.Count("Control/Attach");
  if (request->protocol_version() != 0 && request->protocol_version() != kControlProtocolVersion) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("client speaks control protocol ", request->protocol_version(),
                     ", this axond speaks ", kControlProtocolVersion, "; upgrade one of them"));
  }
  auto caller = state_.control_server->callers().Lookup(context->peer());
  if (!caller) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        "cannot identify the calling process on this connection");
  }
  auto result = state_.sessions->Attach(*caller, request->client_name(), request->placement());
  if (!result.ok()) return axon::rpc::ToGrpcStatus(result.status());
  response->set_session_id(result->id);
  response->set_token(result->token);
  response->set_node_name(state_.config.node.name);
  response->set_protocol_version(kControlProtocolVersion);
  response->set_session_socket(SessionSocketPath(state_.config));
  response->set_quiet_sends(true);
  return grpc::Status::OK;
}

grpc::Status ControlService::Detach(grpc::ServerContext*, const v1::DetachRequest* request,
                                    v1::DetachResponse*) {
  state_.rpc_stats.Count("Control/Detach");
  return axon::rpc::ToGrpcStatus(state_.sessions->Detach(request->session_id(), request->token()));
}

grpc::Status ControlService::BindEndpoint(grpc::ServerContext*,
                                          const v1::BindEndpointRequest* request,
                                          v1::BindEndpointResponse* response) {
  state_.rpc_stats.Count("Control/BindEndpoint");
  if (auto st =
          state_.sessions->BindEndpoint(request->session_id(), request->token(), request->name());
      !st.ok()) {
    return axon::rpc::ToGrpcStatus(st);
  }
  response->set_address(absl::StrCat(state_.config.node.name, "/", request->name()));
  return grpc::Status::OK;
}

grpc::Status ControlService::UnbindEndpoint(grpc::ServerContext*,
                                            const v1::UnbindEndpointRequest* request,
                                            v1::UnbindEndpointResponse*) {
  state_.rpc_stats.Count("Control/UnbindEndpoint");
  return axon::rpc::ToGrpcStatus(
      state_.sessions->UnbindEndpoint(request->session_id(), request->token(), request->name()));
}

grpc::Status ControlService::ReportCalls(grpc::ServerContext*,
                                         const v1::ReportCallsRequest* request,
                                         v1::ReportCallsResponse*) {
  state_.rpc_stats.Count("Control/ReportCalls");
  std::vector<CallReport> calls;
  calls.reserve(static_cast<size_t>(request->methods_size()));
  for (const v1::MethodCalls& m : request->methods()) {
    calls.push_back({.endpoint = m.endpoint(),
                     .method = m.method(),
                     .calls = m.calls(),
                     .errors = m.errors(),
                     .in_flight = m.in_flight(),
                     .dropped_replies = m.dropped_replies(),
                     .p50_us = m.p50_us(),
                     .p99_us = m.p99_us(),
                     .latency_below_pow2_us = {m.latency_below_pow2_us().begin(),
                                               m.latency_below_pow2_us().end()},
                     .latency_sum_us = m.latency_sum_us()});
  }
  return axon::rpc::ToGrpcStatus(
      state_.sessions->ReportCalls(request->session_id(), request->token(), std::move(calls)));
}

grpc::Status ControlService::Expose(grpc::ServerContext*, const v1::ExposeRequest* request,
                                    v1::ExposeResponse* response) {
  state_.rpc_stats.Count("Control/Expose");
  SessionManager& sessions = *state_.sessions;
  if (auto st = sessions.CheckToken(request->session_id(), request->token()); !st.ok()) {
    return axon::rpc::ToGrpcStatus(st);
  }
  if (sessions.windows() == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down");
  }
  if (!request->notify_endpoint().empty() &&
      sessions.EndpointOwner(request->notify_endpoint()) != request->session_id()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("notify endpoint '", request->notify_endpoint(),
                                     "' is not bound by this session"));
  }
  ExposeRequest expose{
      .session = request->session_id(),
      .region_id = request->region_id(),
      .region = sessions.FindRegion(request->session_id(), request->region_id()),
      .offset = request->offset(),
      .length = request->length(),
      .notify_endpoint = request->notify_endpoint(),
      .allowed = {request->allowed().begin(), request->allowed().end()},
      .access = static_cast<uint8_t>((request->no_read() ? 0 : wire::kWindowRead) |
                                     (request->no_write() ? 0 : wire::kWindowWrite))};
  const bool host = expose.region != nullptr && !expose.region->on_gpu();
  auto window = sessions.windows()->Expose(std::move(expose));
  if (!window.ok()) return axon::rpc::ToGrpcStatus(window.status());
  // Initiators on other nodes send RMA requests for it (WindowRma).
  if (host && state_.config.peers.window_transfer == "rma") window->access |= wire::kWindowRma;
  response->set_window_descriptor(wire::EncodeWindowDescriptor(*window));
  response->set_window_id(window->id);
  return grpc::Status::OK;
}

grpc::Status ControlService::Unexpose(grpc::ServerContext*, const v1::UnexposeRequest* request,
                                      v1::UnexposeResponse*) {
  state_.rpc_stats.Count("Control/Unexpose");
  SessionManager& sessions = *state_.sessions;
  if (auto st = sessions.CheckToken(request->session_id(), request->token()); !st.ok()) {
    return axon::rpc::ToGrpcStatus(st);
  }
  if (sessions.windows() == nullptr) return grpc::Status::OK;  // revoked with the daemon
  return axon::rpc::ToGrpcStatus(sessions.windows()->Unexpose(
      request->session_id(), request->window_id(), SessionManager::kRevokeWait));
}

}  // namespace axon::daemon::rpc
