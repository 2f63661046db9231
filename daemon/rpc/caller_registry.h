// Who is behind each control connection. axond accepts control connections
// itself (to read SO_PEERCRED) and hands each fd to gRPC, which reports it to
// handlers as ServerContext::peer() == "fd:N". The registry maps N back to the
// credentials read at accept time.
#pragma once

#include <mutex>
#include <optional>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "common/annotated_mutex.h"
#include "common/unix_socket.h"

namespace axon::daemon::rpc {

class CallerRegistry {
 public:
  // A new connection on `fd`. Replaces whatever an earlier (closed) connection
  // with the same fd number left.
  void Set(int fd, const PeerCredentials& creds);
  // The credentials for a gRPC peer string, if it names a known connection.
  std::optional<PeerCredentials> Lookup(absl::string_view peer) const;

 private:
  mutable Mutex mu_;
  std::unordered_map<int, PeerCredentials> by_fd_ ABSL_GUARDED_BY(mu_);
};

}  // namespace axon::daemon::rpc
