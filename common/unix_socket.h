// Unix-domain socket helpers shared by axond and its clients: peer
// credentials (SO_PEERCRED), probing a socket path for a live listener, and
// creating a listening socket with a given file mode and group.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace axon {

// Who is at the other end of a connected Unix socket, as the kernel saw it
// when the connection was made.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

absl::StatusOr<PeerCredentials> GetPeerCredentials(int fd);

enum class SocketProbe {
  kAbsent,     // nothing at the path
  kStale,      // a socket file nobody listens on (a crashed daemon's)
  kLive,       // a listener accepted our connection
  kNotSocket,  // something else lives at the path
};

// Looks at `path` without changing anything. `type` is the socket type the
// listener would have (SOCK_STREAM or SOCK_SEQPACKET).
absl::StatusOr<SocketProbe> ProbeUnixSocket(const std::string& path, int type = SOCK_STREAM);

// Maximum usable length of a socket path (sun_path less the terminating NUL).
size_t MaxUnixSocketPathLength();

struct ListenOptions {
  unsigned mode = 0660;  // file mode of the socket file
  gid_t gid = -1;        // group of the socket file; -1 keeps the process's
  int backlog = 128;
  int type = SOCK_STREAM;  // or SOCK_SEQPACKET
};

// Creates, binds and listens on `path`, refusing to replace a live socket and
// replacing a stale one. The returned fd is non-blocking and close-on-exec.
absl::StatusOr<UniqueFd> ListenUnixSocket(const std::string& path, const ListenOptions& options);

// Connects to `path` (blocking, close-on-exec).
absl::StatusOr<UniqueFd> ConnectUnixSocket(const std::string& path, int type = SOCK_STREAM);

absl::Status SetNonBlocking(int fd);

}  // namespace axon
