// axon.v1.Admin: health, status, stats, peers and sessions of this daemon.
// Thin: it reads DaemonState and fills the protos.
#pragma once

#include "axon/v1/admin.grpc.pb.h"
#include "daemon/daemon_state.h"

namespace axon::daemon::rpc {

class AdminService final : public axon::v1::Admin::Service {
 public:
  explicit AdminService(DaemonState& state) : state_(state) {}

  grpc::Status Health(grpc::ServerContext* context, const v1::HealthRequest* request,
                      v1::HealthResponse* response) override;
  grpc::Status Status(grpc::ServerContext* context, const v1::StatusRequest* request,
                      v1::StatusResponse* response) override;
  grpc::Status Stats(grpc::ServerContext* context, const v1::StatsRequest* request,
                     v1::StatsResponse* response) override;
  grpc::Status ListPeers(grpc::ServerContext* context, const v1::ListPeersRequest* request,
                         v1::ListPeersResponse* response) override;
  grpc::Status ListSessions(grpc::ServerContext* context, const v1::ListSessionsRequest* request,
                            v1::ListSessionsResponse* response) override;
  grpc::Status Ping(grpc::ServerContext* context, const v1::PingRequest* request,
                    v1::PingResponse* response) override;
  grpc::Status ListNodes(grpc::ServerContext* context, const v1::ListNodesRequest* request,
                         v1::ListNodesResponse* response) override;

 private:
  DaemonState& state_;
};

}  // namespace axon::daemon::rpc
