#include "common/unix_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace axon {
namespace {

absl::StatusOr<sockaddr_un> MakeAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() > MaxUnixSocketPathLength()) {
    return absl::InvalidArgumentError(absl::StrCat("socket path '", path, "' must be 1 to ",
                                                   MaxUnixSocketPathLength(), " bytes long"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

absl::StatusOr<UniqueFd> NewSocket(int type) {
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket(AF_UNIX)");
  return fd;
}

}  // namespace

size_t MaxUnixSocketPathLength() { return sizeof(sockaddr_un::sun_path) - 1; }

absl::StatusOr<PeerCredentials> GetPeerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ErrnoStatus(errno, "getsockopt(SO_PEERCRED)");
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

absl::StatusOr<SocketProbe> ProbeUnixSocket(const std::string& path, int type) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return SocketProbe::kAbsent;
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (!S_ISSOCK(st.st_mode)) return SocketProbe::kNotSocket;
  auto addr = MakeAddress(path);
  if (!addr.ok()) return addr.status();
  auto fd = NewSocket(type);
  if (!fd.ok()) return fd.status();
  if (::connect(fd->get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) == 0) {
    return SocketProbe::kLive;
  }
  // ECONNREFUSED: nobody listens. EAGAIN: a listener whose backlog is full,
  // which is alive.
  if (errno == ECONNREFUSED) return SocketProbe::kStale;
  if (errno == EAGAIN) return SocketProbe::kLive;
  return ErrnoStatus(errno, absl::StrCat("connect ", path));
}

absl::StatusOr<UniqueFd> ListenUnixSocket(const std::string& path, const ListenOptions& options) {
  auto addr = MakeAddress(path);
  if (!addr.ok()) return addr.status();
  auto probe = ProbeUnixSocket(path, options.type);
  if (!probe.ok()) return probe.status();
  switch (*probe) {
    case SocketProbe::kLive:
      return absl::AlreadyExistsError(
          absl::StrCat("another process (another axond?) is already listening on ", path));
    case SocketProbe::kNotSocket:
      return absl::AlreadyExistsError(
          absl::StrCat(path, " exists and is not a socket; refusing to replace it"));
    case SocketProbe::kStale:
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return ErrnoStatus(errno, absl::StrCat("remove stale socket ", path));
      }
      break;
    case SocketProbe::kAbsent:
      break;
  }
  auto fd = NewSocket(options.type);
  if (!fd.ok()) return fd.status();
  // Bind under a restrictive umask so the socket is never reachable with a
  // wider mode than configured, even for a moment.
  const mode_t old_umask = ::umask(0177);
  const int rc = ::bind(fd->get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  const int bind_errno = errno;
  ::umask(old_umask);
  if (rc != 0) return ErrnoStatus(bind_errno, absl::StrCat("bind ", path));
  if (options.gid != static_cast<gid_t>(-1) && ::chown(path.c_str(), -1, options.gid) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return ErrnoStatus(err, absl::StrCat("chgrp ", options.gid, " ", path));
  }
  if (::chmod(path.c_str(), options.mode) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return ErrnoStatus(err, absl::StrCat("chmod ", path));
  }
  if (::listen(fd->get(), options.backlog) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return ErrnoStatus(err, absl::StrCat("listen ", path));
  }
  if (auto st = SetNonBlocking(fd->get()); !st.ok()) return st;
  return fd;
}

absl::StatusOr<UniqueFd> ConnectUnixSocket(const std::string& path, int type) {
  auto addr = MakeAddress(path);
  if (!addr.ok()) return addr.status();
  auto fd = NewSocket(type);
  if (!fd.ok()) return fd.status();
  if (::connect(fd->get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("connect ", path));
  }
  return fd;
}

absl::Status SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, "fcntl(O_NONBLOCK)");
  }
  return absl::OkStatus();
}

}  // namespace axon
