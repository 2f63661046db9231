// axon.v1.Control: session lifecycle for client processes. The caller's
// identity comes from the connection (SO_PEERCRED via CallerRegistry).
#pragma once

#include "axon/v1/control.grpc.pb.h"
#include "daemon/daemon_state.h"

namespace axon::daemon::rpc {

class ControlService final : public axon::v1::Control::Service {
 public:
  explicit ControlService(DaemonState& state) : state_(state) {}

  grpc::Status Attach(grpc::ServerContext* context, const v1::AttachRequest* request,
                      v1::AttachResponse* response) override;
  grpc::Status Detach(grpc::ServerContext* context, const v1::DetachRequest* request,
                      v1::DetachResponse* response) override;
  grpc::Status BindEndpoint(grpc::ServerContext* context, const v1::BindEndpointRequest* request,
                            v1::BindEndpointResponse* response) override;
  grpc::Status UnbindEndpoint(grpc::ServerContext* context,
                              const v1::UnbindEndpointRequest* request,
                              v1::UnbindEndpointResponse* response) override;
  grpc::Status ReportCalls(grpc::ServerContext* context, const v1::ReportCallsRequest* request,
                           v1::ReportCallsResponse* response) override;
  grpc::Status Expose(grpc::ServerContext* context, const v1::ExposeRequest* request,
                      v1::ExposeResponse* response) override;
  grpc::Status Unexpose(grpc::ServerContext* context, const v1::UnexposeRequest* request,
                        v1::UnexposeResponse* response) override;

 private:
  DaemonState& state_;
};

}  // namespace axon::daemon::rpc
