#include "daemon/rpc/caller_registry.h"

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"

namespace axon::daemon::rpc {

void CallerRegistry::Set(int fd, const PeerCredentials& creds) {
  MutexLock lock(&mu_);
  by_fd_[fd] = creds;
}

std::optional<PeerCredentials> CallerRegistry::Lookup(absl::string_view peer) const {
  int fd = -1;
  if (!absl::ConsumePrefix(&peer, "fd:") || !absl::SimpleAtoi(peer, &fd)) return std::nullopt;
  MutexLock lock(&mu_);
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return std::nullopt;
  return it->second;
}

}  // namespace axon::daemon::rpc
