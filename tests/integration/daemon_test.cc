// A real axond on a temporary socket, driven by the real axonctl and by real
// gRPC clients: health, status, JSON, permissions, a second daemon, signals,
// stale sockets, sessions and systemd notification.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "axon/v1/admin.pb.h"
#include "axon/v1/control.grpc.pb.h"
#include "client/tools/local_cluster.h"
#include "common/rpc/channel.h"
#include "common/unix_socket.h"
#include "tests/support/axond.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

template <typename Message>
Message ParseJson(const std::string& json) {
  Message message;
  auto st = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(st.ok()) << st.ToString() << "\n" << json;
  return message;
}

class DaemonTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(DaemonTest, HealthStatusAndJson) {
  Axond axond(dir_, {.node_name = "node-a"});
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();

  RunResult health = axond.Ctl({"health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_THAT(health.out, HasSubstr("healthy"));
  EXPECT_THAT(health.out, HasSubstr("ucx_thread"));

  RunResult status = axond.Ctl({"status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("node-a"));
  EXPECT_THAT(status.out, HasSubstr("self/"));

  RunResult json = axond.Ctl({"--json", "status"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  auto parsed = ParseJson<v1::StatusResponse>(json.out);
  EXPECT_EQ(parsed.node_name(), "node-a");
  EXPECT_EQ(parsed.pid(), axond.process().pid());
  EXPECT_EQ(parsed.control_socket(), axond.socket());
  EXPECT_FALSE(parsed.ucx().version().empty());
  EXPECT_THAT(parsed.ucx().transports(), ::testing::Contains(::testing::StartsWith("self/")));
  EXPECT_THAT(parsed.ucx().memory_types(), ::testing::Contains("host"));
  EXPECT_EQ(parsed.log_level(), "info");

  auto health_json = ParseJson<v1::HealthResponse>(axond.Ctl({"--json", "health"}).out);
  EXPECT_EQ(health_json.status(), v1::HealthResponse::SERVING);

  RunResult stats = axond.Ctl({"--json", "stats"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  auto parsed_stats = ParseJson<v1::StatsResponse>(stats.out);
  EXPECT_GE(parsed_stats.rpc_calls().at("Admin/Status"), 1u);
  EXPECT_GE(parsed_stats.control_connections_accepted(), 3u);
  EXPECT_EQ(parsed_stats.gpu_bounce_idle_device_bytes(), 0u);  // nothing moved yet
  EXPECT_THAT(axond.Ctl({"stats"}).out, HasSubstr("gpu bounce idle"));

  RunResult version = axond.Ctl({"version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.out, HasSubstr("axond"));
}

TEST_F(DaemonTest, AxonctlWithoutDaemonExits2WithReason) {
  RunResult r = RunProgram({AxonctlPath(), "--socket", dir_.File("none.sock"), "health"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("cannot reach axond"));
  EXPECT_THAT(r.err, HasSubstr("none.sock"));
  // One line.
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
}

TEST_F(DaemonTest, AxonctlFollowsAxonSocketEnvironment) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  RunResult r = RunProgram({AxonctlPath(), "health"}, {.env = {{"AXON_SOCKET", axond.socket()}}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(DaemonTest, CallerWhoseUidIsNotAllowedIsDenied) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
  const passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  // Mode 0666 so that the refusal comes from the daemon, not the file system.
  Axond axond(dir_, {.sets = {"control.socket_mode=\"0666\""}});
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  const SpawnOptions as_nobody{.uid = nobody->pw_uid, .gid = nobody->pw_gid};

  for (const char* command : {"health", "status", "stats"}) {
    RunResult r = axond.Ctl({command}, as_nobody);
    EXPECT_EQ(r.exit_code, 2) << command;
    EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED")) << command;
    EXPECT_THAT(r.err, HasSubstr("uid " + std::to_string(nobody->pw_uid))) << command;
  }
  // The standard health service is refused too.
  RunResult stats = axond.Ctl({"--json", "stats"});
  auto parsed = ParseJson<v1::StatsResponse>(stats.out);
  EXPECT_EQ(parsed.control_connections_denied(), 3u);
  EXPECT_THAT(axond.process().Log(), HasSubstr("refused"));

  // The same user, once allowed, gets through.
  Axond allowed(dir_, {.node_name = "node-b",
                       .sets = {"control.socket_mode=\"0666\"",
                                "control.allowed_uids=[" + std::to_string(nobody->pw_uid) + "]"}});
  ASSERT_TRUE(allowed.WaitReady()) << allowed.process().Log();
  EXPECT_EQ(allowed.Ctl({"health"}, as_nobody).exit_code, 0);
}

TEST_F(DaemonTest, SecondDaemonOnTheSameSocketIsRefused) {
  Axond first(dir_);
  ASSERT_TRUE(first.WaitReady()) << first.process().Log();
  Axond second(dir_);  // same node name, so the same socket path
  auto code = second.process().Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value()) << "second daemon did not exit";
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(second.process().Log(), HasSubstr("already listening on " + first.socket()));
  // The first one is untouched.
  EXPECT_EQ(first.Ctl({"health"}).exit_code, 0);
}

TEST_F(DaemonTest, DirectGpuPathNeedsAUcxThatMovesCudaMemory) {
  // Whether this UCX moves CUDA memory (the GPU machine's does; one without
  // a CUDA driver does not) decides what gpu.remote_path=direct does.
  auto status_of = [](const Axond& axond) {
    v1::StatusResponse status;
    EXPECT_TRUE(
        google::protobuf::util::JsonStringToMessage(axond.Ctl({"--json", "status"}).out, &status)
            .ok());
    return status;
  };
  bool ucx_takes_cuda = false;
  {
    Axond staged(dir_, AxondOptions{.sets = {"gpu.remote_path=staging"}});
    ASSERT_TRUE(staged.WaitReady()) << staged.process().Log();
    const v1::StatusResponse status = status_of(staged);
    ucx_takes_cuda = status.ucx().cuda_memory_supported();
    EXPECT_EQ(status.cuda().remote_path(), "staging");
  }
  Axond direct(dir_, AxondOptions{.sets = {"gpu.remote_path=direct"}});
  if (ucx_takes_cuda) {
    ASSERT_TRUE(direct.WaitReady()) << direct.process().Log();
    EXPECT_EQ(status_of(direct).cuda().remote_path(), "direct");
    return;
  }
  // It cannot: the daemon stops at start-up, saying why.
  auto code = direct.process().Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value()) << "axond did not exit";
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(direct.process().Log(), HasSubstr("cannot move CUDA memory here"));
}

TEST_F(DaemonTest, LocalClusterSaysWhyADaemonDidNotStart) {
  // The tools' two-daemon cluster (axon demo, the benchmarks): both up, or
  // the reason one exited, at once rather than after a connect timeout.
  {
    tools::LocalCluster good(dir_.path() + "/good", AxondPath());
    EXPECT_TRUE(good.Start("good").ok());
  }
  tools::LocalCluster bad(dir_.path() + "/bad", AxondPath(), {"gpu.remote_path=sideways"});
  const auto start = std::chrono::steady_clock::now();
  const absl::Status st = bad.Start("bad");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("exited at start (code 1)"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("remote_path"));
}

TEST_F(DaemonTest, SigtermExitsZeroAndRemovesTheSocket) {
  for (int sig : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(sig);
    Axond axond(dir_);
    ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
    axond.process().Signal(sig);
    auto code = axond.process().Wait(std::chrono::seconds(20));
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0) << axond.process().Log();
    EXPECT_EQ(::access(axond.socket().c_str(), F_OK), -1);
    EXPECT_THAT(axond.process().Log(), HasSubstr("shutting down"));
  }
}

TEST_F(DaemonTest, StaleSocketOfACrashedDaemonIsReplaced) {
  std::string socket;
  {
    Axond crashed(dir_);
    ASSERT_TRUE(crashed.WaitReady()) << crashed.process().Log();
    crashed.process().Signal(SIGKILL);
    crashed.process().Wait(std::chrono::seconds(10));
    socket = crashed.socket();
  }
  auto probe = ProbeUnixSocket(socket);
  ASSERT_TRUE(probe.ok());
  ASSERT_EQ(*probe, SocketProbe::kStale);
  Axond restarted(dir_);
  ASSERT_TRUE(restarted.WaitReady()) << restarted.process().Log();
  EXPECT_EQ(restarted.Ctl({"health"}).exit_code, 0);
}

TEST_F(DaemonTest, SocketFileGetsTheConfiguredMode) {
  Axond axond(dir_, {.sets = {"control.socket_mode=\"0600\""}});
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  struct stat st {};
  ASSERT_EQ(::stat(axond.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(DaemonTest, SighupReloadsTheLogLevel) {
  Axond axond(dir_, {.config_yaml = "log:\n  level: info\n"});
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  WriteFile(axond.config_path(), "log:\n  level: debug\n");
  axond.process().Signal(SIGHUP);
  EXPECT_TRUE(WaitFor(
      [&] {
        return ParseJson<v1::StatusResponse>(axond.Ctl({"--json", "status"}).out).log_level() ==
               "debug";
      },
      std::chrono::seconds(10)));
  // A broken file is refused and the running level kept.
  WriteFile(axond.config_path(), "log:\n  level: loud\n");
  axond.process().Signal(SIGHUP);
  EXPECT_TRUE(
      WaitFor([&] { return axond.process().Log().find("not reloaded") != std::string::npos; },
              std::chrono::seconds(10)));
  auto status = ParseJson<v1::StatusResponse>(axond.Ctl({"--json", "status"}).out);
  EXPECT_EQ(status.log_level(), "debug");
  EXPECT_EQ(ParseJson<v1::StatsResponse>(axond.Ctl({"--json", "stats"}).out).config_reloads(), 1u);
  EXPECT_TRUE(axond.process().running());
}

TEST_F(DaemonTest, IdleDaemonDoesNotSpin) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto before = ParseJson<v1::StatsResponse>(axond.Ctl({"--json", "stats"}).out);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto after = ParseJson<v1::StatsResponse>(axond.Ctl({"--json", "stats"}).out);
  EXPECT_LE(after.ucx_thread_wakeups() - before.ucx_thread_wakeups(), 3u);
}

TEST_F(DaemonTest, BadConfigFailsToStartWithTheReason) {
  Axond axond(dir_, {.config_yaml = "control:\n  socket_mode: \"999\"\n"});
  auto code = axond.process().Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(axond.process().Log(), HasSubstr("control.socket_mode"));
  EXPECT_THAT(axond.process().Log(), HasSubstr(".yaml:2:3"));
}

TEST_F(DaemonTest, CheckConfigAndPrintDefault) {
  const std::string good = dir_.File("good.yaml");
  const std::string bad = dir_.File("bad.yaml");
  WriteFile(good, "log:\n  level: warn\n");
  WriteFile(bad, "log:\n  levle: warn\n");
  RunResult ok = RunProgram({AxondPath(), "--check-config", good});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  RunResult not_ok = RunProgram({AxondPath(), "--check-config", bad});
  EXPECT_EQ(not_ok.exit_code, 1);
  EXPECT_THAT(not_ok.err, HasSubstr("bad.yaml:2:3"));
  EXPECT_THAT(not_ok.err, HasSubstr("log.levle"));
  RunResult with_set = RunProgram({AxondPath(), "--check-config", good, "--set", "log.level=nope"});
  EXPECT_EQ(with_set.exit_code, 1);

  RunResult printed = RunProgram({AxondPath(), "--print-default-config"});
  EXPECT_EQ(printed.exit_code, 0);
  EXPECT_EQ(printed.out, ReadFile(AXON_TEST_DEFAULT_CONFIG));
  // What it prints is itself a valid config.
  const std::string copy = dir_.File("default.yaml");
  WriteFile(copy, printed.out);
  EXPECT_EQ(RunProgram({AxondPath(), "--check-config", copy}).exit_code, 0);
}

TEST_F(DaemonTest, AttachListAndDetachSessions) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  auto stub = v1::Control::NewStub(rpc::MakeControlChannel(axond.socket()));

  v1::AttachRequest attach;
  attach.set_client_name("trainer-0");
  v1::AttachResponse session;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->Attach(&ctx, attach, &session).ok());
  }
  EXPECT_EQ(session.node_name(), "node-a");
  EXPECT_EQ(session.token().size(), 32u);

  auto listed = ParseJson<v1::ListSessionsResponse>(axond.Ctl({"--json", "sessions"}).out);
  ASSERT_EQ(listed.sessions_size(), 1);
  EXPECT_EQ(listed.sessions(0).client_name(), "trainer-0");
  EXPECT_EQ(listed.sessions(0).pid(), ::getpid());
  EXPECT_EQ(listed.sessions(0).uid(), ::geteuid());

  v1::DetachRequest detach;
  detach.set_session_id(session.session_id());
  detach.set_token("wrong");
  v1::DetachResponse detached;
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(stub->Detach(&ctx, detach, &detached).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  detach.set_token(session.token());
  {
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub->Detach(&ctx, detach, &detached).ok());
  }
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(stub->Detach(&ctx, detach, &detached).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  EXPECT_EQ(
      ParseJson<v1::ListSessionsResponse>(axond.Ctl({"--json", "sessions"}).out).sessions_size(),
      0);

  attach.set_client_name(std::string(200, 'x'));
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(stub->Attach(&ctx, attach, &session).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  attach.set_client_name("ok");
  attach.set_protocol_version(999);
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(stub->Attach(&ctx, attach, &session).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
}

TEST_F(DaemonTest, SessionOfAKilledClientIsReaped) {
  Axond axond(dir_);
  ASSERT_TRUE(axond.WaitReady()) << axond.process().Log();
  Child client({HelperPath("attach_client"), axond.socket(), "doomed"}, dir_.File("client.log"));
  auto sessions = [&] {
    return ParseJson<v1::ListSessionsResponse>(axond.Ctl({"--json", "sessions"}).out)
        .sessions_size();
  };
  ASSERT_TRUE(WaitFor([&] { return sessions() == 1; }, std::chrono::seconds(10))) << client.Log();
  client.Signal(SIGKILL);
  client.Wait(std::chrono::seconds(10));
  EXPECT_TRUE(WaitFor([&] { return sessions() == 0; }, std::chrono::seconds(5)));
  // The session socket's close (or, without one, the pidfd) ends it.
  EXPECT_THAT(axond.process().Log(), HasSubstr("session 1 closed"));
  EXPECT_EQ(axond.Ctl({"health"}).exit_code, 0);
}

// systemd's protocol without systemd: a datagram socket as NOTIFY_SOCKET.
TEST_F(DaemonTest, NotifiesSystemdReadyWatchdogAndStopping) {
  const std::string notify_path = dir_.File("notify");
  UniqueFd notify(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, notify_path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(notify.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv{.tv_sec = 0, .tv_usec = 100000};
  ::setsockopt(notify.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

  Axond axond(dir_, {.env = {{"NOTIFY_SOCKET", notify_path}, {"WATCHDOG_USEC", "400000"}}});
  std::string received;
  auto receive_until = [&](const std::string& what) {
    return WaitFor(
        [&] {
          char buffer[512];
          const ssize_t n = ::recv(notify.get(), buffer, sizeof(buffer), 0);
          if (n > 0) received.append(buffer, static_cast<size_t>(n)).append("\n");
          return received.find(what) != std::string::npos;
        },
        std::chrono::seconds(20));
  };
  EXPECT_TRUE(receive_until("READY=1")) << received << axond.process().Log();
  EXPECT_TRUE(receive_until("WATCHDOG=1")) << received;
  axond.process().Signal(SIGTERM);
  EXPECT_TRUE(receive_until("STOPPING=1")) << received;
  EXPECT_EQ(axond.process().Wait(std::chrono::seconds(20)), 0);
}

}  // namespace
}  // namespace axon::testing
