// libaxon against a real axond: attach, the session socket, host memory
// registered by memfd, bad regions, per-session limits, and a killed client
// whose memory and fds the daemon gives back.
#include "common/wire/session.h"

#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include "axon/call.h"
#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "common/fd_passing.h"
#include "common/unix_socket.h"
#include "tests/support/axond.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

v1::ListSessionsResponse Sessions(const Axond& axond) {
  return axond.CtlJson<v1::ListSessionsResponse>({"sessions"});
}

class SessionTest : public ::testing::Test {
 protected:
  // SIGKILLs `client`; its session, and its memory mapped into `axond`, go.
  static void KillAndExpectItsSessionGone(Axond& axond, Child& client) {
    client.Signal(SIGKILL);
    client.Wait(std::chrono::seconds(10));
    EXPECT_TRUE(
        WaitFor([&] { return Sessions(axond).sessions_size() == 0; }, std::chrono::seconds(5)));
    const pid_t daemon = axond.process().pid();
    EXPECT_TRUE(WaitFor([&] { return MappedClientBytes(daemon) == 0; }, std::chrono::seconds(5)))
        << MappedClientBytes(daemon) << " bytes still mapped";
  }

  TempDir dir_;
};

TEST_F(SessionTest, AttachAndShareHostMemory) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto client = Client::Connect({.socket_path = axond.socket(), .client_name = "trainer-0"});
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->node_name(), "node-a");
  {
    auto buffer = (*client)->AllocateHost(1 << 20);
    ASSERT_TRUE(buffer.ok()) << buffer.status();
    std::memset(buffer->data(), 7, buffer->size());
    auto sessions = Sessions(axond);
    ASSERT_EQ(sessions.sessions_size(), 1);
    EXPECT_TRUE(sessions.sessions(0).socket_bound());
    EXPECT_EQ(sessions.sessions(0).registered_bytes(), 1u << 20);
    EXPECT_EQ(sessions.sessions(0).regions(), 1u);
    EXPECT_EQ(MappedClientBytes(axond.process().pid()), 1u << 20);
    RunResult text = axond.Ctl({"sessions"});
    EXPECT_THAT(text.out, HasSubstr("trainer-0"));
    EXPECT_THAT(text.out, HasSubstr("1048576"));
  }
  // The buffer is gone: unregistered and unmapped on both sides.
  EXPECT_EQ(Sessions(axond).sessions(0).registered_bytes(), 0u);
  EXPECT_EQ(MappedClientBytes(axond.process().pid()), 0u);
  EXPECT_TRUE((*client)->Detach().ok());
  EXPECT_EQ(Sessions(axond).sessions_size(), 0);
  EXPECT_EQ((*client)->AllocateHost(10).status().code(), absl::StatusCode::kFailedPrecondition);
}

// A trainer that outlives its daemon (systemctl restart axond) attaches to
// the new one at once from the same process: nothing of the old connection
// is reused, whether the old client was still attached or had gone.
TEST_F(SessionTest, AttachesToARestartedDaemonFromTheSameProcess) {
  std::unique_ptr<Client> kept;
  for (int restart = 0; restart < 3; ++restart) {
    SCOPED_TRACE(restart);
    auto axond = std::make_unique<Axond>(dir_);
    ASSERT_TRUE(axond->WaitReady()) << axond->process().Log();
    auto client = Client::Connect({.socket_path = axond->socket(), .client_name = "trainer"});
    ASSERT_TRUE(client.ok()) << client.status();
    auto buffer = (*client)->AllocateHost(4096);
    EXPECT_TRUE(buffer.ok()) << buffer.status();
    if (restart % 2 == 0) {
      kept = *std::move(client);  // attached while its daemon stops
    } else {
      client->reset();  // gone before
    }
    axond.reset();
  }
}

// A daemon with clients attached stops at once on SIGTERM (it took gRPC's
// whole 2 s grace while a client's connection was open), and the clients
// see errors, not hangs.
TEST_F(SessionTest, StopsPromptlyWithClientsAttached) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto client = Client::Connect({.socket_path = axond.socket(), .client_name = "trainer"});
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->BindEndpoint("x").ok());
  axond.process().Signal(SIGTERM);
  const auto code = axond.process().Wait(std::chrono::milliseconds(1500));
  ASSERT_TRUE(code.has_value()) << "axond still running 1.5 s after SIGTERM";
  EXPECT_EQ(*code, 0) << axond.process().Log();
  EXPECT_FALSE((*client)->AllocateHost(4096).ok());
}

TEST_F(SessionTest, BadRegionsAreInvalidArgument) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto client = Client::Connect({.socket_path = axond.socket()});
  ASSERT_TRUE(client.ok()) << client.status();
  auto expect_invalid = [&](int fd, size_t length, const std::string& why) {
    auto region = (*client)->RegisterHost(fd, length);
    EXPECT_EQ(region.status().code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_THAT(std::string(region.status().message()), HasSubstr(why));
  };
  // Not a memfd.
  const std::string path = dir_.File("plain");
  WriteFile(path, std::string(4096, 'x'));
  UniqueFd plain(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  expect_invalid(plain.get(), 4096, "not a memfd");
  // A memfd that could shrink under the daemon.
  UniqueFd unsealed(::memfd_create("axon-host", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(unsealed.get(), 4096), 0);
  expect_invalid(unsealed.get(), 4096, "not sealed");
  // Longer than the memfd, empty, or an overflowing length.
  UniqueFd sealed(::memfd_create("axon-host", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(sealed.get(), 4096), 0);
  ASSERT_EQ(::fcntl(sealed.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  expect_invalid(sealed.get(), 8192, "the memfd holds 4096");
  expect_invalid(sealed.get(), 0, "at least one byte");
  expect_invalid(sealed.get(), SIZE_MAX, "the memfd holds 4096");
  // An id that was never registered.
  EXPECT_EQ((*client)->Unregister(12345).code(), absl::StatusCode::kInvalidArgument);
  // The good one still works, and the daemon is fine.
  EXPECT_TRUE((*client)->RegisterHost(sealed.get(), 4096).ok());
  EXPECT_EQ(axond.Ctl({"health"}).exit_code, 0);
}

TEST_F(SessionTest, LimitsAreResourceExhausted) {
  Axond axond(dir_, {.sets = {"sessions.max_registered_bytes=2097152", "sessions.max_regions=2"}});
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto client = Client::Connect({.socket_path = axond.socket()});
  ASSERT_TRUE(client.ok()) << client.status();
  auto first = (*client)->AllocateHost(1 << 20);
  ASSERT_TRUE(first.ok()) << first.status();
  auto too_big = (*client)->AllocateHost(1536 << 10);
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(too_big.status().message()), HasSubstr("sessions.max_registered_bytes"));
  auto second = (*client)->AllocateHost(4096);
  ASSERT_TRUE(second.ok()) << second.status();
  auto third = (*client)->AllocateHost(4096);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("sessions.max_regions"));
}

TEST_F(SessionTest, SessionSocketRefusesAWrongToken) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto client = Client::Connect({.socket_path = axond.socket()});
  ASSERT_TRUE(client.ok()) << client.status();
  auto socket = ConnectUnixSocket(axond.socket() + ".session", SOCK_SEQPACKET);
  ASSERT_TRUE(socket.ok()) << socket.status();
  wire::SessionRequest hello{.type = wire::SessionMessageType::kHello,
                             .session_id = (*client)->session_id(),
                             .token = std::string(32, 'x')};
  ASSERT_TRUE(SendMessage(socket->get(), wire::EncodeSessionRequest(hello)).ok());
  auto message = ReceiveMessage(socket->get());
  ASSERT_TRUE(message.ok()) << message.status();
  auto reply = wire::DecodeSessionReply(message->bytes);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code, absl::StatusCode::kPermissionDenied);
  // Garbage instead of a hello ends the connection, not the daemon.
  auto junk = ConnectUnixSocket(axond.socket() + ".session", SOCK_SEQPACKET);
  ASSERT_TRUE(junk.ok());
  const uint8_t garbage[] = {0xff, 0xff, 0xff};
  ASSERT_TRUE(SendMessage(junk->get(), garbage).ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        auto m = ReceiveMessage(junk->get());
        return m.ok() && m->eof;
      },
      std::chrono::seconds(5)));
  // The real session is untouched.
  EXPECT_TRUE((*client)->AllocateHost(4096).ok());
}

TEST_F(SessionTest, KilledClientGivesEverythingBack) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  const pid_t daemon = axond.process().pid();
  // A first control call lets gRPC open what it opens lazily: the baseline.
  ASSERT_EQ(axond.Ctl({"health"}).exit_code, 0);
  const int fds_before = OpenFds(daemon);
  Child client({HelperPath("attach_client"), axond.socket(), "doomed", "--register", "8388608"},
               dir_.File("client.log"));
  ASSERT_TRUE(WaitFor([&] { return client.Log().find("registered") != std::string::npos; },
                      std::chrono::seconds(20)))
      << client.Log();
  EXPECT_EQ(MappedClientBytes(daemon), 8u << 20);
  EXPECT_GT(OpenFds(daemon), fds_before);
  KillAndExpectItsSessionGone(axond, client);
  // gRPC may keep an idle connection fd a moment longer; allow it to settle.
  EXPECT_TRUE(WaitFor([&] { return OpenFds(daemon) <= fds_before; }, std::chrono::seconds(5)))
      << OpenFds(daemon) << " fds open, " << fds_before << " before";
  EXPECT_EQ(axond.Ctl({"health"}).exit_code, 0);
}

}  // namespace
}  // namespace axon::testing

namespace axon::testing {
namespace {

// Where pidfd_open does not exist (a kernel before 5.3, valgrind) clients
// still attach, and a killed one's session goes when its socket closes.
TEST_F(SessionTest, WithoutPidfdAKilledClientsSessionGoesWithItsSocket) {
  Axond axond(dir_, {.wrapper = {HelperPath("no_pidfd")}});
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  const pid_t daemon = axond.process().pid();
  Child client({HelperPath("attach_client"), axond.socket(), "doomed", "--register", "8388608"},
               dir_.File("client.log"));
  ASSERT_TRUE(WaitFor([&] { return client.Log().find("registered") != std::string::npos; },
                      std::chrono::seconds(20)))
      << client.Log() << axond.process().Log();
  EXPECT_THAT(axond.process().Log(), HasSubstr("no pidfd_open here"));
  EXPECT_EQ(Sessions(axond).sessions_size(), 1);
  EXPECT_EQ(MappedClientBytes(daemon), 8u << 20);
  KillAndExpectItsSessionGone(axond, client);
}

TEST_F(SessionTest, EndpointsAreUniqueAndGoWithTheirSession) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto a = Client::Connect({.socket_path = axond.socket(), .client_name = "a"});
  auto b = Client::Connect({.socket_path = axond.socket(), .client_name = "b"});
  ASSERT_TRUE(a.ok() && b.ok());
  auto address = (*a)->BindEndpoint("trainer-3");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, "node-a/trainer-3");
  EXPECT_EQ((*b)->BindEndpoint("trainer-3").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*b)->BindEndpoint("bad name/x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*b)->UnbindEndpoint("trainer-3").code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(axond.Ctl({"sessions"}).out, HasSubstr("trainer-3"));
  // Closing the owner's session frees the name for others.
  ASSERT_TRUE((*a)->Detach().ok());
  EXPECT_TRUE((*b)->BindEndpoint("trainer-3").ok());
  EXPECT_TRUE((*b)->UnbindEndpoint("trainer-3").ok());
  EXPECT_TRUE((*b)->BindEndpoint("trainer-3").ok());
}

}  // namespace
}  // namespace axon::testing

namespace axon::testing {
namespace {

// Seconds the daemon's UCX threads were on a CPU or waiting for one (from
// /proc/PID/task/TID/schedstat): the time a turn can take, asleep excluded.
// A loaded machine (the sanitizer runs share two cores) keeps a runnable
// thread off the CPU for a while, and a turn's wall-clock busy time counts
// that wait too.
double UcxThreadsScheduledSeconds(pid_t pid) {
  const std::vector<std::string> threads = ThreadsNamed(pid, "axond-ucx");
  if (threads.empty()) return -1;
  double seconds = 0;
  for (const std::string& thread : threads) {
    uint64_t on_cpu_ns = 0, waiting_ns = 0;
    std::ifstream(thread + "/schedstat") >> on_cpu_ns >> waiting_ns;
    seconds += static_cast<double>(on_cpu_ns + waiting_ns) * 1e-9;
  }
  return seconds;
}

// Also: the UCX thread's busy time (axonctl stats) counts work, not sleep.
TEST_F(SessionTest, RingRoundTripsAndAnIdleDaemonSleeps) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto client = Client::Connect({.socket_path = axond.socket()});
  ASSERT_TRUE(client.ok()) << client.status();
  for (int i = 0; i < 20000; ++i) {
    absl::Status st = (*client)->PingDaemon();
    ASSERT_TRUE(st.ok()) << i << ": " << st;
  }
  // With a session and its rings attached but nothing to do, the daemon's
  // loop sleeps instead of polling the rings.
  auto stats = [&] {
    v1::StatsResponse s;
    (void)google::protobuf::util::JsonStringToMessage(axond.Ctl({"--json", "stats"}).out, &s);
    return s;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double scheduled_before = UcxThreadsScheduledSeconds(axond.process().pid());
  const v1::StatsResponse before = stats();
  // The 20000 round trips kept the UCX thread busy for a while, and never
  // longer than the daemon has been up.
  EXPECT_GT(before.ucx_thread_busy_seconds(), 0.0);
  EXPECT_LT(before.ucx_thread_busy_seconds(), before.uptime_seconds());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const v1::StatsResponse after = stats();
  const double scheduled = UcxThreadsScheduledSeconds(axond.process().pid()) - scheduled_before;
  EXPECT_LE(after.ucx_thread_wakeups() - before.ucx_thread_wakeups(), 3u);
  // The thread slept: a second went by with little of it on (or waiting
  // for) a CPU, and busy time counts no more than that, not the sleep (the
  // stats calls themselves are a little work).
  ASSERT_GE(scheduled_before, 0.0) << "no axond-ucx thread in /proc/PID/task";
  EXPECT_LT(scheduled, 0.5);
  EXPECT_LT(after.ucx_thread_busy_seconds() - before.ucx_thread_busy_seconds(), scheduled + 0.05);
  EXPECT_THAT(axond.Ctl({"stats"}).out, HasSubstr("% of uptime)"));
  // And it wakes again for the next message.
  EXPECT_TRUE((*client)->PingDaemon().ok());
}

TEST_F(SessionTest, KilledDaemonFailsWhatWaitsUnavailable) {
  // A daemon that dies must not leave its clients waiting forever: what
  // they wait for fails UNAVAILABLE, through callbacks, Wait and calls.
  // Without reconnecting (restart_test.cc has the default), receives fail too.
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  const ClientOptions options{
      .socket_path = axond.socket(), .progress_thread = true, .reconnect = false};
  auto server_client = Client::Connect(options);
  auto client = Client::Connect(options);
  ASSERT_TRUE(server_client.ok() && client.ok());
  ASSERT_TRUE((*server_client)->BindEndpoint("srv").ok());
  ASSERT_TRUE((*client)->BindEndpoint("me").ok());
  Server server(**server_client, "srv");
  std::atomic<bool> release{false};
  server.Handle("hang", [&](const Request&) -> absl::StatusOr<Reply> {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return Reply{};
  });
  ASSERT_TRUE(server.Start().ok());
  struct Release {  // before the server stops, whatever fails in between
    std::atomic<bool>& flag;
    ~Release() { flag = true; }
  } release_on_exit{release};
  auto buffer = (*client)->AllocateHost(4096);
  ASSERT_TRUE(buffer.ok());
  auto with_callback = (*client)->PostRecv("me", 1, *buffer, 0, 1024);
  auto waited = (*client)->PostRecv("me", 2, *buffer, 1024, 1024);
  ASSERT_TRUE(with_callback.ok() && waited.ok());
  std::future<Completed> future = (*client)->Future(*with_callback);
  Caller caller(**client, "me");
  auto call = caller.CallAsync("srv", "hang", "", {});
  ASSERT_TRUE(call.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the call reached the handler

  axond.process().Signal(SIGKILL);
  ASSERT_EQ(axond.process().Wait(std::chrono::seconds(10)), -SIGKILL);
  const auto killed = std::chrono::steady_clock::now();

  ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const Completed completed = future.get();
  EXPECT_EQ(completed.status.code(), absl::StatusCode::kUnavailable) << completed.status;
  EXPECT_THAT(std::string(completed.status.message()), HasSubstr("axond went away"));
  auto wait = (*client)->Wait(*waited, 5000);
  const absl::Status waited_status = wait.ok() ? wait->status : wait.status();
  EXPECT_EQ(waited_status.code(), absl::StatusCode::kUnavailable) << waited_status;
  ASSERT_TRUE(call->WaitFor(5000)) << "the call still waits for a dead daemon";
  EXPECT_EQ(call->Wait().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - killed, std::chrono::seconds(5));
  auto send = (*client)->Send("me", "srv", 1, *buffer, 0, 64);
  EXPECT_EQ(send.status().code(), absl::StatusCode::kUnavailable) << send.status();
}

}  // namespace
}  // namespace axon::testing
