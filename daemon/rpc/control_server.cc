#include "daemon/rpc/control_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_posix.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/process_info.h"

namespace axon::daemon::rpc {

ControlServer::ControlServer(const ControlServerOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(
    const ControlServerOptions& options, AccessPolicy policy,
    const std::vector<grpc::Service*>& services, asio::io_context& io) {
  std::unique_ptr<ControlServer> server(new ControlServer(options));

  // The socket first: a daemon that finds another one serving it stops
  // before it has a gRPC server. gRPC 1.51 aborts (server_cc.cc:257) when a
  // sync server is shut down as it starts. No connection is accepted before
  // the servers below exist: accepts run on `io`, which runs later.
  ListenOptions listen;
  listen.mode = options.socket_mode;
  if (options.socket_gid) listen.gid = *options.socket_gid;
  ControlServer* raw = server.get();
  auto listener = UnixListener::Start(
      options.socket_path, listen, std::move(policy), "control socket", io,
      [raw](AcceptedConnection c) { raw->OnConnection(std::move(c)); }, options.fds);
  if (!listener.ok()) return listener.status();
  server->listener_ = *std::move(listener);

  // Order matters: the health service and reflection are process-wide
  // switches that every ServerBuilder built afterwards picks up. The deny
  // server is built first so that a refused caller cannot use either.
  server->deny_server_ = std::make_unique<DenyServer>();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  for (grpc::Service* service : services) builder.RegisterService(service);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr) return absl::InternalError("gRPC server failed to start");
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  return server;
}

ControlServer::~ControlServer() { Shutdown(std::chrono::milliseconds(0)); }

void ControlServer::OnConnection(AcceptedConnection connection) {
  const int fd = connection.fd.Release();  // gRPC owns it from here
  callers_.Set(fd, connection.creds);
  if (connection.allowed.ok()) {
    accepted_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("control socket: connection from pid {} uid {}", connection.creds.pid,
                  connection.creds.uid);
    grpc::AddInsecureChannelFromFd(server_.get(), fd);
  } else {
    denied_.fetch_add(1, std::memory_order_relaxed);
    deny_server_->AddConnection(fd, connection.allowed);
  }
}

void ControlServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (listener_) listener_->Close();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + grace);
  if (deny_server_) deny_server_->Shutdown();
}

}  // namespace axon::daemon::rpc
