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

ControlServer::ControlServer(const ControlServerOptions& options, AccessPolicy policy,
                             asio::io_context& io)
    : options_(options), policy_(std::move(policy)), listener_(io) {}

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(
    const ControlServerOptions& options, AccessPolicy policy,
    const std::vector<grpc::Service*>& services, asio::io_context& io) {
  std::unique_ptr<ControlServer> server(new ControlServer(options, std::move(policy), io));

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

  ListenOptions listen;
  listen.mode = options.socket_mode;
  if (options.socket_gid) listen.gid = *options.socket_gid;
  auto fd = ListenUnixSocket(options.socket_path, listen);
  if (!fd.ok()) return fd.status();
  struct stat st {};
  if (::stat(options.socket_path.c_str(), &st) == 0) {
    server->socket_inode_ = st.st_ino;
  }
  server->listener_.assign(fd->Release());
  server->AwaitConnections();
  return server;
}

ControlServer::~ControlServer() { Shutdown(std::chrono::milliseconds(0)); }

void ControlServer::AwaitConnections() {
  listener_.async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
    if (ec || shut_down_) return;
    AcceptReady();
    AwaitConnections();
  });
}

void ControlServer::AcceptReady() {
  while (true) {
    const int fd =
        ::accept4(listener_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      if (errno == ECONNABORTED) continue;
      // EMFILE and friends: log and let the next readiness retry.
      spdlog::error("control socket: accept failed: {}", std::strerror(errno));
      return;
    }
    auto creds = GetPeerCredentials(fd);
    if (!creds.ok()) {
      spdlog::warn("control socket: dropping a connection: {}", creds.status().message());
      ::close(fd);
      continue;
    }
    auto groups = SupplementaryGroups(creds->pid);
    absl::Status allowed = policy_.Check(*creds, groups.ok() ? *groups : std::vector<gid_t>{});
    callers_.Set(fd, *creds);
    if (allowed.ok()) {
      accepted_.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("control socket: connection from pid {} uid {}", creds->pid, creds->uid);
      grpc::AddInsecureChannelFromFd(server_.get(), fd);
    } else {
      denied_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("control socket: refused: {}", allowed.message());
      deny_server_->AddConnection(fd, std::string(allowed.message()));
    }
  }
}

void ControlServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  std::error_code ignored;
  listener_.close(ignored);
  // Remove the socket only if it is still ours, not a successor's.
  struct stat st {};
  if (socket_inode_ != 0 && ::stat(options_.socket_path.c_str(), &st) == 0 &&
      st.st_ino == socket_inode_) {
    ::unlink(options_.socket_path.c_str());
  }
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + grace);
  if (deny_server_) deny_server_->Shutdown();
}

}  // namespace axon::daemon::rpc
