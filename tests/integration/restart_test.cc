// Clients that outlive their daemon's restarts (ClientOptions::reconnect),
// in host memory; tests/gpu/gpu_restart_test.cc runs the same drill with
// GPU memory. What happens without reconnecting is in session_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>

#include "tests/support/restart_drill.h"

namespace axon::testing {
namespace {

TEST(RestartTest, ClientsLiveThroughThreeRestartsOfTheirDaemon) {
  TempDir dir;
  RunRestartDrill(dir, HostDrillMemory());
}

// A receive kept for the next daemon fails once nobody will post it again:
// the client detached while its daemon was away.
TEST(RestartTest, KeptReceivesFailWhenTheClientStopsWaitingForItsDaemon) {
  TempDir dir;
  auto axond = std::make_unique<Axond>(dir);
  ASSERT_TRUE(axond->WaitReady()) << axond->process().Log();
  auto client = Client::Connect({.socket_path = axond->socket()});
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->BindEndpoint("me").ok());
  auto buffer = (*client)->AllocateHost(4096);
  ASSERT_TRUE(buffer.ok());
  auto receive = (*client)->PostRecv("me", 1, *buffer, 0, 64);
  ASSERT_TRUE(receive.ok());
  std::future<Completed> done = (*client)->Future(*receive);
  axond.reset();  // stopped, not restarted
  ASSERT_TRUE(WaitFor([&] { return !(*client)->connected(); }, std::chrono::seconds(5)));
  EXPECT_EQ(done.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "a kept receive failed while a daemon could still come back";
  ASSERT_TRUE((*client)->Detach().ok());
  (void)(*client)->Progress(100);  // runs the callbacks that came due
  ASSERT_EQ(done.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(done.get().status.code(), absl::StatusCode::kUnavailable);
}

// on_connection may close the client it reports on (from libaxon's own
// reconnector thread) without deadlocking or touching freed memory.
TEST(RestartTest, OnConnectionMayCloseItsOwnClient) {
  TempDir dir;
  auto axond = std::make_unique<Axond>(dir);
  ASSERT_TRUE(axond->WaitReady()) << axond->process().Log();
  std::mutex mu;
  std::unique_ptr<Client> client;  // guarded by mu
  std::atomic<bool> closed{false};
  auto connected = Client::Connect(
      {.socket_path = axond->socket(), .on_connection = [&](const ConnectionEvent& event) {
         if (!event.connected) return;
         std::lock_guard<std::mutex> lock(mu);
         client.reset();
         closed = true;
       }});
  ASSERT_TRUE(connected.ok()) << connected.status();
  {
    std::lock_guard<std::mutex> lock(mu);
    client = *std::move(connected);
  }
  axond.reset();
  axond = std::make_unique<Axond>(dir);
  ASSERT_TRUE(axond->WaitReady()) << axond->process().Log();
  EXPECT_TRUE(WaitFor([&] { return closed.load(); }, std::chrono::seconds(10)));
  // It detached from the new daemon on its way out, and the daemon serves on.
  EXPECT_EQ(axond->Ctl({"health"}).exit_code, 0);
  EXPECT_EQ(axond->CtlJson<v1::ListSessionsResponse>({"sessions"}).sessions_size(), 0);
}

}  // namespace
}  // namespace axon::testing
