#include "daemon/unix_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/process_info.h"

namespace axon::daemon {

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Start(
    const std::string& path, const ListenOptions& options, AccessPolicy policy, std::string what,
    asio::io_context& io, Handler on_connection, const FdBudget* fds) {
  std::unique_ptr<UnixListener> listener(new UnixListener(path, std::move(policy), std::move(what),
                                                          io, std::move(on_connection), fds));
  auto fd = ListenUnixSocket(path, options);
  if (!fd.ok()) return fd.status();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) listener->inode_ = st.st_ino;
  listener->listener_.assign(fd->Release());
  listener->AwaitConnections();
  return listener;
}

void UnixListener::Close() {
  if (closed_) return;
  closed_ = true;
  std::error_code ignored;
  listener_.close(ignored);
  struct stat st {};
  if (inode_ != 0 && ::stat(path_.c_str(), &st) == 0 && st.st_ino == inode_) {
    ::unlink(path_.c_str());
  }
}

void UnixListener::AwaitConnections() {
  listener_.async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
    if (ec || closed_) return;
    AcceptReady();
    AwaitConnections();
  });
}

void UnixListener::AcceptReady() {
  while (true) {
    UniqueFd fd(
        ::accept4(listener_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EAGAIN || errno == EINTR) return;
      if (errno == ECONNABORTED) continue;
      // EMFILE and friends: log, and let the next readiness retry.
      spdlog::error("{}: accept failed: {}", what_, std::strerror(errno));
      return;
    }
    auto creds = GetPeerCredentials(fd.get());
    if (!creds.ok()) {
      spdlog::warn("{}: dropping a connection: {}", what_, creds.status().message());
      continue;
    }
    auto groups = SupplementaryGroups(creds->pid);
    absl::Status allowed = policy_.Check(*creds, groups.ok() ? *groups : std::vector<gid_t>{});
    if (allowed.ok() && fds_ != nullptr) {
      // Taken already, so the caller hears why; the next may not be.
      allowed = fds_->CheckConnection(what_);
    }
    if (!allowed.ok()) spdlog::warn("{}: refused: {}", what_, allowed.message());
    on_connection_({std::move(fd), *creds, std::move(allowed)});
  }
}

}  // namespace axon::daemon
