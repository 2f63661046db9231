// A listening Unix socket of axond's (the control socket, the session
// socket): bound with the configured mode and group, served on the
// io_context, every caller identified (SO_PEERCRED) and checked against the
// access policy, and against the descriptor reserve, before its connection
// is handed on. On Close the socket file
// is removed, unless another process has replaced it since.
#pragma once

#include <sys/types.h>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "common/unix_socket.h"
#include "daemon/access_policy.h"
#include "daemon/fd_budget.h"

namespace axon::daemon {

struct AcceptedConnection {
  UniqueFd fd;  // non-blocking, close-on-exec
  PeerCredentials creds;
  absl::Status allowed;  // the access policy's verdict
};

class UnixListener {
 public:
  using Handler = std::function<void(AcceptedConnection connection)>;

  // `what` names the socket in log lines ("control socket").
  static absl::StatusOr<std::unique_ptr<UnixListener>> Start(
      const std::string& path, const ListenOptions& options, AccessPolicy policy, std::string what,
      asio::io_context& io, Handler on_connection, const FdBudget* fds = nullptr);
  ~UnixListener() { Close(); }
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  // Stops accepting and removes the socket file. Run on the io thread.
  void Close();

 private:
  UnixListener(std::string path, AccessPolicy policy, std::string what, asio::io_context& io,
               Handler on_connection, const FdBudget* fds)
      : fds_(fds),
        path_(std::move(path)),
        policy_(std::move(policy)),
        what_(std::move(what)),
        listener_(io),
        on_connection_(std::move(on_connection)) {}
  void AwaitConnections();
  void AcceptReady();

  const FdBudget* fds_;
  std::string path_;
  AccessPolicy policy_;
  std::string what_;
  asio::posix::stream_descriptor listener_;
  Handler on_connection_;
  ino_t inode_ = 0;
  bool closed_ = false;
};

}  // namespace axon::daemon
