#include "daemon/access_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace axon::daemon {

absl::Status AccessPolicy::Check(const PeerCredentials& caller,
                                 const std::vector<gid_t>& supplementary_groups) const {
  auto contains = [](const auto& list, auto value) {
    return std::find(list.begin(), list.end(), value) != list.end();
  };
  if (caller.uid == 0 || caller.uid == daemon_uid_ || contains(allowed_uids_, caller.uid) ||
      contains(allowed_gids_, caller.gid)) {
    return absl::OkStatus();
  }
  for (gid_t gid : supplementary_groups) {
    if (contains(allowed_gids_, gid)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "uid ", caller.uid, " (gid ", caller.gid, ", pid ", caller.pid,
      ") may not use this axond: add the user to control.allowed_uids or one of its groups "
      "to control.allowed_gids"));
}

}  // namespace axon::daemon
