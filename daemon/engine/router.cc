#include "daemon/engine/router.h"

#include "absl/strings/str_cat.h"
#include "common/wire/data.h"

namespace axon::daemon {

void Router::Send(Pending&& send, absl::string_view address) {
  if (const size_t slash = address.find('/'); slash != absl::string_view::npos) {
    const absl::string_view node = address.substr(0, slash);
    const absl::string_view to = address.substr(slash + 1);
    if (node != node_name_) {
      if (!remote_) {
        sink_.Fail(send.session, send.op_id, NoPeerPlane(node));
        return;
      }
      if (to.empty() || to.size() > wire::kMaxEndpointName) {
        sink_.Fail(
            send.session, send.op_id,
            absl::InvalidArgumentError(absl::StrCat("bad destination endpoint name '", to, "'")));
        return;
      }
      remote_(Outgoing{.session = send.session,
                       .op_id = send.op_id,
                       .node = std::string(node),
                       .from = std::move(send.from),
                       .to = std::string(to),
                       .tag = send.tag,
                       .quiet = send.quiet,
                       .region = std::move(send.region),
                       .offset = send.offset,
                       .length = send.length,
                       .more = std::move(send.more)});
      return;
    }
    address = to;
  }
  if (elsewhere_) {
    if (const std::optional<uint64_t> owner = sink_.Owner(address); owner && !here_(*owner)) {
      elsewhere_(std::move(send), std::string(address), *owner);
      return;
    }
  }
  matcher_.Send(std::move(send), std::string(address));
}

void Router::SendRemote(Outgoing&& send) {
  if (!remote_) {
    sink_.Fail(send.session, send.op_id, NoPeerPlane(send.node));
    return;
  }
  remote_(std::move(send));
}

absl::Status Router::NoPeerPlane(absl::string_view node) const {
  return absl::FailedPreconditionError(
      absl::StrCat("node ", node_name_,
                   " has no peer plane (peers.listen is empty), so it cannot reach node ", node));
}

}  // namespace axon::daemon
