// Clients that outlive their daemon's restarts (ClientOptions::reconnect),
// in host memory; tests/gpu/gpu_restart_test.cc runs the same drill with
// GPU memory. What happens without reconnecting is in session_test.cc.
#include <gtest/gtest.h>

#include "tests/support/restart_drill.h"

namespace axon::testing {
namespace {

TEST(RestartTest, ClientsLiveThroughThreeRestartsOfTheirDaemon) {
  TempDir dir;
  RunRestartDrill(dir, HostDrillMemory());
}

}  // namespace
}  // namespace axon::testing
