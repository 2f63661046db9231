// How axonctl prints the UCX thread's busy time: since start in `stats`, and
// over the last interval in `stats --watch`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/axonctl/render.h"

namespace axon::ctl {
namespace {

using ::testing::HasSubstr;

v1::StatsResponse At(double uptime, double busy) {
  v1::StatsResponse s;
  s.set_uptime_seconds(uptime);
  s.set_ucx_thread_busy_seconds(busy);
  return s;
}

TEST(AxonctlRender, StatsShowBusyTimeAndItsShareOfUptime) {
  EXPECT_THAT(RenderStats(At(200, 50)), HasSubstr("busy 50.000 s (25.0% of uptime)"));
}

TEST(AxonctlRender, WatchShowsTheShareOfTheLastInterval) {
  // 10 s up, 1 s busy; two seconds later, 2.5 s busy: 75% of the interval.
  EXPECT_THAT(RenderBusyShare(At(10, 1), At(12, 2.5)), HasSubstr("busy 75.0% over the last 2.0 s"));
  // A restarted daemon (uptime went back) has no interval to show.
  EXPECT_EQ(RenderBusyShare(At(10, 1), At(5, 0.1)), "");
}

}  // namespace
}  // namespace axon::ctl
