// How axonctl prints the UCX thread's busy time (since start in `stats`, over
// the last interval in `stats --watch`), the call servers (`calls`) and a
// peer that is down (`peers`).
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

TEST(AxonctlRender, ADownPeerShowsItsLastErrorAndFailedDials) {
  v1::ListPeersResponse peers;
  v1::PeerInfo* p = peers.add_peers();
  p->set_name("n2");
  p->set_state("down");
  p->set_last_error("connection lost: Endpoint is not connected");
  p->set_failed_dials(37);
  EXPECT_THAT(
      RenderPeers(peers),
      HasSubstr("last error: connection lost: Endpoint is not connected (37 dials failed)"));
  p->set_failed_dials(1);
  EXPECT_THAT(RenderPeers(peers), ::testing::Not(HasSubstr("dials failed")));
}

TEST(AxonctlRender, CallsShowARowPerEndpointAndMethod) {
  v1::ListSessionsResponse sessions;
  EXPECT_EQ(RenderCalls(sessions), "no call servers\n");
  v1::SessionInfo* s = sessions.add_sessions();
  s->set_session_id(7);
  s->set_client_name("ps-0");
  v1::MethodCalls* m = s->add_calls();
  m->set_endpoint("kv");
  m->set_method("get");
  m->set_calls(1200);
  m->set_errors(3);
  m->set_in_flight(4);
  m->set_dropped_replies(1);
  m->set_p50_us(41.6);
  m->set_p99_us(180.2);
  const std::string table = RenderCalls(sessions);
  EXPECT_THAT(table, HasSubstr("METHOD"));
  EXPECT_THAT(table, ::testing::ContainsRegex("7 +ps-0 +kv +get +1200 +3 +4 +1 +42us +180us"));
}

TEST(AxonctlRender, WindowsShowAccessHoldsAndTrafficByPath) {
  v1::ListSessionsResponse sessions;
  EXPECT_EQ(RenderWindows(sessions), "no windows exposed\n");
  v1::SessionInfo* s = sessions.add_sessions();
  s->set_session_id(3);
  s->set_client_name("decode-0");
  v1::WindowInfo* w = s->add_windows();
  w->set_window_id(42);
  w->set_region_id(2);
  w->set_offset(4096);
  w->set_length(1 << 20);
  w->set_writable(true);
  w->set_notify_endpoint("kv");
  w->set_holds(1);
  w->set_writes(10);
  w->set_bytes_written(5000);
  w->set_local_ops(4);
  w->set_remote_ops(6);
  w->set_local_bytes(2000);
  w->set_remote_bytes(3000);
  w->set_rma_ops(5);
  w->set_rma_bytes(2500);
  w->add_allowed("prefill-node");
  const std::string table = RenderWindows(sessions);
  EXPECT_THAT(table, ::testing::ContainsRegex(
                         "3 +decode-0 +42 +2\\+4096 +1048576 +w +kv +1 +10/0 +5000/0 +4/6/5 "
                         "+2000/3000/2500 +prefill-node"));
}

}  // namespace
}  // namespace axon::ctl
