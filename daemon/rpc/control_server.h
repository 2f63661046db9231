// The control socket: a Unix socket that axond accepts on itself, reading each
// caller's credentials (SO_PEERCRED) and checking them against the access
// policy, then handing the connection to gRPC: allowed callers to the server
// with the real services (plus grpc.health.v1 and server reflection), refused
// ones to a DenyServer.
#pragma once

#include <grpcpp/server.h>
#include <sys/types.h>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/access_policy.h"
#include "daemon/fd_budget.h"
#include "daemon/rpc/caller_registry.h"
#include "daemon/rpc/deny_server.h"
#include "daemon/unix_listener.h"

namespace axon::daemon::rpc {

struct ControlServerOptions {
  std::string socket_path;
  unsigned socket_mode = 0660;
  std::optional<gid_t> socket_gid;
  const FdBudget* fds = nullptr;  // refuses connections while descriptors are short
};

class ControlServer {
 public:
  // Binds the socket (replacing a stale one, refusing a live one) and starts
  // serving `services` on `io`'s thread (accepting) and gRPC's (calls).
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(
      const ControlServerOptions& options, AccessPolicy policy,
      const std::vector<grpc::Service*>& services, asio::io_context& io);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Stops accepting, finishes gRPC (calls in flight get up to `grace`) and
  // removes the socket file. Run on the io thread. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

  const CallerRegistry& callers() const { return callers_; }
  uint64_t connections_accepted() const { return accepted_.load(); }
  uint64_t connections_denied() const { return denied_.load(); }

 private:
  explicit ControlServer(const ControlServerOptions& options);
  void OnConnection(AcceptedConnection connection);

  ControlServerOptions options_;
  std::unique_ptr<UnixListener> listener_;
  CallerRegistry callers_;
  std::unique_ptr<DenyServer> deny_server_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> denied_{0};
  bool shut_down_ = false;
};

}  // namespace axon::daemon::rpc
