// The session socket: a Unix SOCK_SEQPACKET socket beside the control socket
// (control.socket + ".session") where each attached client keeps one
// connection open. It carries file descriptors (memfds for host memory) and
// is the client's liveness signal: when it closes, the session is closed and
// everything it held is released. Served on the io_context's thread.
#pragma once

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "common/fd_passing.h"
#include "common/unix_socket.h"
#include "common/wire/session.h"
#include "daemon/access_policy.h"
#include "daemon/session/session_manager.h"
#include "daemon/unix_listener.h"

namespace axon::daemon {

class SessionSocketServer {
 public:
  // Hands a session's rings memory and doorbells to the engine.
  using RingsAttacher =
      std::function<absl::Status(uint64_t session, std::unique_ptr<HostRegion> memory,
                                 UniqueFd daemon_bell, UniqueFd client_bell)>;

  static absl::StatusOr<std::unique_ptr<SessionSocketServer>> Start(
      const std::string& path, const ListenOptions& options, AccessPolicy policy,
      SessionManager& sessions, RingsAttacher attach_rings, asio::io_context& io,
      const FdBudget* fds = nullptr);
  ~SessionSocketServer();
  SessionSocketServer(const SessionSocketServer&) = delete;
  SessionSocketServer& operator=(const SessionSocketServer&) = delete;

  // Stops accepting, drops every connection and removes the socket file.
  // Run on the io thread.
  void Shutdown();

 private:
  struct Connection {
    explicit Connection(asio::io_context& io, int fd) : socket(io, fd) {}
    asio::posix::stream_descriptor socket;
    PeerCredentials creds;
    uint64_t session_id = 0;  // 0 until its Hello is accepted
  };

  SessionSocketServer(SessionManager& sessions, RingsAttacher attach_rings, asio::io_context& io)
      : sessions_(sessions), attach_rings_(std::move(attach_rings)), io_(io) {}
  void OnConnection(AcceptedConnection connection);
  void AwaitMessage(const std::shared_ptr<Connection>& conn);
  // False when the connection is done.
  bool ReadMessages(const std::shared_ptr<Connection>& conn);
  wire::SessionReply Handle(Connection& conn, const wire::SessionRequest& request,
                            std::vector<UniqueFd> fds);
  void Drop(const std::shared_ptr<Connection>& conn, absl::string_view why);

  SessionManager& sessions_;
  RingsAttacher attach_rings_;
  asio::io_context& io_;
  std::unique_ptr<UnixListener> listener_;
  std::set<std::shared_ptr<Connection>> connections_;
  bool shut_down_ = false;
};

}  // namespace axon::daemon
