#include "daemon/peer/dial_rules.h"

namespace axon::daemon {

HelloVerdict JudgeHello(std::string_view me, std::string_view them, const HelloFrom& peer) {
  if (them == me) return HelloVerdict::kRefuseOwnName;
  if (!peer.member) return HelloVerdict::kRefuseUnknown;
  if (peer.on_demand && peer.connecting && peer.dialing) {
    return me < them ? HelloVerdict::kRefuseCrossed : HelloVerdict::kReplaceOurDial;
  }
  if ((peer.up || peer.connecting) && peer.connected) return HelloVerdict::kRefuseConnected;
  return HelloVerdict::kAccept;
}

RejectVerdict JudgeReject(std::string_view reason, bool on_demand, bool dialing) {
  return reason == kCrossedDials && on_demand && dialing ? RejectVerdict::kAwaitTheirs
                                                         : RejectVerdict::kDown;
}

bool SweepUnbound(bool open, absl::Time since, absl::Time now, absl::Duration dead_after) {
  return !open || now - since > dead_after;
}

}  // namespace axon::daemon
