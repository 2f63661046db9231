// Who may use the control socket: root, axond's own user, the users in
// control.allowed_uids, and members (primary or supplementary) of the groups
// in control.allowed_gids.
#pragma once

#include <sys/types.h>

#include <vector>

#include "absl/status/status.h"
#include "common/unix_socket.h"

namespace axon::daemon {

class AccessPolicy {
 public:
  AccessPolicy(uid_t daemon_uid, std::vector<uid_t> allowed_uids, std::vector<gid_t> allowed_gids)
      : daemon_uid_(daemon_uid),
        allowed_uids_(std::move(allowed_uids)),
        allowed_gids_(std::move(allowed_gids)) {}

  // OK, or PERMISSION_DENIED saying who was refused and how to allow them.
  // `supplementary_groups` are the caller's, when known.
  absl::Status Check(const PeerCredentials& caller,
                     const std::vector<gid_t>& supplementary_groups) const;

 private:
  uid_t daemon_uid_;
  std::vector<uid_t> allowed_uids_;
  std::vector<gid_t> allowed_gids_;
};

}  // namespace axon::daemon
