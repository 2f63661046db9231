// The peer plane's rules for connections other nodes offer: which hello is
// taken, which of two crossed dials both keep, and when an accepted
// connection that is no peer's goes.
#include "daemon/peer/dial_rules.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace axon::daemon {
namespace {

// A member found through etcd that this node is dialing right now.
HelloFrom Dialing() {
  return {
      .member = true, .on_demand = true, .connecting = true, .dialing = true, .connected = true};
}

TEST(DialRules, AHelloInThisNodesOwnNameOrFromAStrangerIsRefused) {
  EXPECT_EQ(JudgeHello("n1", "n1", Dialing()), HelloVerdict::kRefuseOwnName);
  EXPECT_EQ(JudgeHello("n1", "n9", HelloFrom{}), HelloVerdict::kRefuseUnknown);
  HelloFrom left = Dialing();
  left.member = false;  // its etcd record went
  EXPECT_EQ(JudgeHello("n1", "n2", left), HelloVerdict::kRefuseUnknown);
}

TEST(DialRules, OfTwoCrossedDialsBothKeepTheOneTheFirstNameDialed) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"n1", "n2"}, {"m01", "m12"}, {"a", "ab"}, {"node-10", "node-9"}};
  for (const auto& [first, second] : pairs) {
    ASSERT_LT(first, second);
    // The first name refuses the second's dial; the second drops its own
    // dial and takes the first's: one connection, the same on both sides.
    EXPECT_EQ(JudgeHello(first, second, Dialing()), HelloVerdict::kRefuseCrossed) << first;
    EXPECT_EQ(JudgeHello(second, first, Dialing()), HelloVerdict::kReplaceOurDial) << second;
    // The refused dialer waits for the other's dial rather than failing.
    EXPECT_EQ(JudgeReject(kCrossedDials, true, true), RejectVerdict::kAwaitTheirs);
  }
}

TEST(DialRules, AHelloAfterOurDialLostItsCrossingIsTaken) {
  // The reject came first: our dial is gone, the peer still connecting.
  HelloFrom waiting = Dialing();
  waiting.dialing = false;
  waiting.connected = false;
  EXPECT_EQ(JudgeHello("n2", "n1", waiting), HelloVerdict::kAccept);
}

TEST(DialRules, ASecondConnectionToAConnectedNodeIsRefused) {
  HelloFrom up{.member = true, .on_demand = true, .up = true, .connected = true};
  EXPECT_EQ(JudgeHello("n1", "n2", up), HelloVerdict::kRefuseConnected);
  EXPECT_EQ(JudgeHello("n2", "n1", up), HelloVerdict::kRefuseConnected);
  // Accepted and in its handshake (awaiting the hello-auth), or a static
  // peer's dial (static peers never cross: only the first name dials).
  HelloFrom accepting{.member = true, .on_demand = true, .connecting = true, .connected = true};
  EXPECT_EQ(JudgeHello("n1", "n2", accepting), HelloVerdict::kRefuseConnected);
  HelloFrom fixed = Dialing();
  fixed.on_demand = false;
  EXPECT_EQ(JudgeHello("n2", "n1", fixed), HelloVerdict::kRefuseConnected);
}

TEST(DialRules, AMemberWithNoConnectionIsAccepted) {
  EXPECT_EQ(JudgeHello("n1", "n2", HelloFrom{.member = true, .on_demand = true}),
            HelloVerdict::kAccept);
  EXPECT_EQ(JudgeHello("n2", "n1", HelloFrom{.member = true}), HelloVerdict::kAccept);
}

TEST(DialRules, AnyOtherRejectTakesThePeerDown) {
  EXPECT_EQ(JudgeReject("wrong token (the proof does not match)", true, true),
            RejectVerdict::kDown);
  // A crossing reject that comes too late (our dial is no longer waiting),
  // or to a static peer, is a refusal like any other.
  EXPECT_EQ(JudgeReject(kCrossedDials, true, false), RejectVerdict::kDown);
  EXPECT_EQ(JudgeReject(kCrossedDials, false, true), RejectVerdict::kDown);
}

TEST(DialRules, ARefusedConnectionWaitsForItsDialerToCloseIt) {
  const absl::Time refused = absl::FromUnixSeconds(1000);
  const absl::Duration dead_after = absl::Seconds(10);
  // Open: kept while the reject may still be on its way (a close from this
  // side could drop it), however slow the dialer.
  EXPECT_FALSE(SweepUnbound(true, refused, refused + absl::Milliseconds(200), dead_after));
  EXPECT_FALSE(SweepUnbound(true, refused, refused + dead_after, dead_after));
  // Its dialer closed it: gone at the next tick.
  EXPECT_TRUE(SweepUnbound(false, refused, refused + absl::Milliseconds(1), dead_after));
  // Left open past dead_after (or never said hello): gone.
  EXPECT_TRUE(
      SweepUnbound(true, refused, refused + dead_after + absl::Milliseconds(1), dead_after));
}

}  // namespace
}  // namespace axon::daemon
