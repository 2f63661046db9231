// The server's rule for waking a sleeping worker when a call is queued
// (client/lib/server_core.h): each spinning worker takes one queued call
// unwoken, so only the calls beyond the spinners wake sleepers.
#include <gtest/gtest.h>

#include "client/lib/server_core.h"

namespace axon::internal {
namespace {

TEST(WakeForQueuedTest, ASpinnerTakesOneCallUnwoken) {
  EXPECT_FALSE(WakeForQueued(/*unclaimed=*/1, /*spinning=*/1, /*sleeping=*/3));
  EXPECT_FALSE(WakeForQueued(2, 2, 2));
}

TEST(WakeForQueuedTest, CallsBeyondTheSpinnersWakeASleeper) {
  // A burst: the one spinner may take a slow handler's call; the next must
  // not wait for it.
  EXPECT_TRUE(WakeForQueued(2, 1, 3));
  EXPECT_TRUE(WakeForQueued(3, 2, 2));
  EXPECT_TRUE(WakeForQueued(1, 0, 1));
}

TEST(WakeForQueuedTest, NobodyToWake) {
  EXPECT_FALSE(WakeForQueued(5, 0, 0));
  EXPECT_FALSE(WakeForQueued(5, 2, 0));
}

}  // namespace
}  // namespace axon::internal
