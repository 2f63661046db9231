// The rules for a connection another node offers: whether its hello is
// taken, and which of two dials that crossed is kept. Pure functions of what
// the peer plane knows, so that they are unit-tested without daemons
// (tests/unit/dial_rules_test.cc); PeerManager acts on their verdicts.
#pragma once

#include <string_view>

#include "absl/time/time.h"

namespace axon::daemon {

// The reason a node refusing the other's dial of a crossed pair gives.
inline constexpr std::string_view kCrossedDials =
    "crossed dials: the one from the first name stays";

// What this node knows of the node a hello comes from.
struct HelloFrom {
  bool member = false;     // a peer of this node (static, or in etcd)
  bool on_demand = false;  // connected on first use (etcd's members)
  bool up = false;
  bool connecting = false;
  bool dialing = false;    // this node's own dial to it waits for its hello
  bool connected = false;  // this node holds a connection to it
};

enum class HelloVerdict {
  kRefuseOwnName,    // it claims this node's name
  kRefuseUnknown,    // not a member
  kRefuseCrossed,    // both dialed, and this node's name sorts first: ours stays
  kReplaceOurDial,   // both dialed, and theirs stays: ours goes, theirs is taken
  kRefuseConnected,  // a connection to that node is up or being made
  kAccept,
};

// Of two nodes that dial each other at once (each had a send for the other),
// both keep the connection the node whose name sorts first dialed.
HelloVerdict JudgeHello(std::string_view me, std::string_view them, const HelloFrom& peer);

enum class RejectVerdict {
  kAwaitTheirs,  // our dial lost a crossing: theirs comes on its own connection
  kDown,         // the peer refused us: the sends waiting for it fail
};

// What a dialer does with the reject its dial got.
RejectVerdict JudgeReject(std::string_view reason, bool on_demand, bool dialing);

// Whether an accepted connection that is no peer's (yet) goes: its dialer
// closed it, or it has been open for dead_after (it never said hello, or it
// was refused and its dialer left it open). A refused connection is not
// closed from this side earlier: UCX holds a send on a connection not yet
// wired up, and a forced close drops it, so the dialer would see its
// connection reset instead of the reject.
bool SweepUnbound(bool open, absl::Time since, absl::Time now, absl::Duration dead_after);

}  // namespace axon::daemon
