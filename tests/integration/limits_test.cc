// Per-client limits of a real daemon: past each cap a clear
// RESOURCE_EXHAUSTED naming its config key, sessions that never open their
// socket closed and released, connections that never say hello dropped,
// and new sessions refused well before the daemon runs out of file
// descriptors. After each refusal the clients already attached keep
// working.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "axon/v1/control.grpc.pb.h"
#include "common/rpc/channel.h"
#include "common/unique_fd.h"
#include "tests/support/cluster.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

v1::ListSessionsResponse Sessions(const Axond& daemon) {
  return daemon.CtlJson<v1::ListSessionsResponse>({"sessions"});
}

std::unique_ptr<Client> Connect(const Axond& daemon, const std::string& name) {
  auto client = Client::Connect({.socket_path = daemon.socket(), .client_name = name});
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

// A message from `from` (endpoint "src") to `to` (endpoint "dst") arrives:
// the daemon still serves the clients it has.
void ExpectMessageGoesThrough(Client& from, Client& to) {
  auto in = to.AllocateHost(64);
  auto out = from.AllocateHost(64);
  ASSERT_TRUE(in.ok() && out.ok());
  std::memset(out->data(), 42, 64);
  auto recv = to.PostRecv("dst", 7, *in, 0, 64);
  ASSERT_TRUE(recv.ok()) << recv.status();
  auto send = from.Send("src", "dst", 7, *out, 0, 64);
  ASSERT_TRUE(send.ok()) << send.status();
  auto sent = from.Wait(*send, 10000);
  ASSERT_TRUE(sent.ok() && sent->status.ok());
  auto got = to.Wait(*recv, 10000);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->status.ok()) << got->status;
  EXPECT_EQ(static_cast<uint8_t*>(in->data())[63], 42);
}

TEST(LimitsTest, SessionCapsNameTheirKeysAndOthersKeepWorking) {
  TempDir dir;
  Axond daemon(dir, {.sets = {"sessions.max_per_process=2", "sessions.max_per_uid=3",
                              "sessions.max_sessions=100"}});
  ASSERT_TRUE(daemon.WaitReady()) << daemon.process().Log();
  auto a = Connect(daemon, "a");
  auto b = Connect(daemon, "b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->BindEndpoint("src").ok());
  ASSERT_TRUE(b->BindEndpoint("dst").ok());

  auto third = Client::Connect({.socket_path = daemon.socket(), .client_name = "c"});
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("sessions.max_per_process"));

  // Another process of the same user: one more fits the uid's 3, the next not.
  Child other({HelperPath("attach_client"), daemon.socket(), "other"}, dir.File("other.log"));
  ASSERT_TRUE(
      WaitFor([&] { return Sessions(daemon).sessions_size() == 3; }, std::chrono::seconds(10)))
      << other.Log();
  Child refused({HelperPath("attach_client"), daemon.socket(), "refused"}, dir.File("refused.log"));
  EXPECT_EQ(refused.Wait(std::chrono::seconds(10)), 1);
  EXPECT_THAT(refused.Log(), HasSubstr("sessions.max_per_uid"));

  ExpectMessageGoesThrough(*a, *b);
  EXPECT_EQ(Sessions(daemon).sessions_size(), 3);
  // Each refusal is counted under its key (axon_refused_total).
  const auto counted = daemon.CtlJson<v1::StatsResponse>({"stats"}).refused_by_limit();
  EXPECT_EQ(counted.at("sessions.max_per_process"), 1u);
  EXPECT_EQ(counted.at("sessions.max_per_uid"), 1u);
  EXPECT_EQ(counted.at("sessions.max_sessions"), 0u);
}

TEST(LimitsTest, AllSessionsCapNamesItsKey) {
  TempDir dir;
  Axond daemon(dir, {.sets = {"sessions.max_sessions=2"}});
  ASSERT_TRUE(daemon.WaitReady()) << daemon.process().Log();
  auto a = Connect(daemon, "a");
  auto b = Connect(daemon, "b");
  ASSERT_TRUE(a && b);
  auto third = Client::Connect({.socket_path = daemon.socket(), .client_name = "c"});
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("sessions.max_sessions"));
  // One leaves: there is room again.
  a.reset();
  EXPECT_TRUE(WaitFor(
      [&] { return Client::Connect({.socket_path = daemon.socket(), .client_name = "d"}).ok(); },
      std::chrono::seconds(10)));
}

TEST(LimitsTest, EndpointsPerSessionCapNamesItsKey) {
  TempDir dir;
  Axond daemon(dir, {.sets = {"sessions.max_endpoints=2"}});
  ASSERT_TRUE(daemon.WaitReady()) << daemon.process().Log();
  auto a = Connect(daemon, "a");
  auto b = Connect(daemon, "b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->BindEndpoint("src").ok());
  ASSERT_TRUE(a->BindEndpoint("src2").ok());
  auto third = a->BindEndpoint("src3");
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("sessions.max_endpoints"));
  ASSERT_TRUE(b->BindEndpoint("dst").ok());  // another session's own count
  ExpectMessageGoesThrough(*a, *b);
}

TEST(LimitsTest, SessionWithoutItsSocketIsClosedAndReleased) {
  TempDir dir;
  Axond daemon(dir, {.sets = {"sessions.socket_timeout_ms=300"}});
  ASSERT_TRUE(daemon.WaitReady()) << daemon.process().Log();
  // Attach over gRPC, and never open the session socket.
  auto stub = v1::Control::NewStub(rpc::MakeControlChannel(daemon.socket()));
  v1::AttachRequest attach;
  attach.set_client_name("half");
  v1::AttachResponse session;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->Attach(&ctx, attach, &session).ok());
  EXPECT_EQ(Sessions(daemon).sessions_size(), 1);
  EXPECT_TRUE(
      WaitFor([&] { return Sessions(daemon).sessions_size() == 0; }, std::chrono::seconds(5)));
  EXPECT_EQ(daemon.CtlJson<v1::StatsResponse>({"stats"}).sessions_closed_total(), 1u);
  EXPECT_THAT(daemon.process().Log(), HasSubstr("sessions.socket_timeout_ms"));

  // A connection to the session socket that never says hello is dropped too.
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = daemon.socket() + ".session";
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
  char byte = 0;
  const timeval wait{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
  EXPECT_EQ(::recv(fd.get(), &byte, 1, 0), 0) << "the daemon kept a silent connection open";

  // A client that does everything right still attaches.
  auto ok = Connect(daemon, "whole");
  EXPECT_TRUE(ok != nullptr);
}

TEST(LimitsTest, SessionsAreRefusedWellBeforeFileDescriptorsRunOut) {
  TempDir dir;
  // A small limit for the whole daemon, and the reserve a quarter of it.
  Axond daemon(
      dir, {.sets = {"sessions.fd_reserve=64", "sessions.max_per_process=1000"}, .max_fds = 256});
  ASSERT_TRUE(daemon.WaitReady()) << daemon.process().Log();
  EXPECT_THAT(daemon.process().Log(), HasSubstr("open files: limit 256"));
  std::vector<std::unique_ptr<Client>> clients;
  absl::Status refused;
  for (int i = 0; i < 200 && refused.ok(); ++i) {
    auto c = Client::Connect({.socket_path = daemon.socket(), .client_name = "c"});
    if (!c.ok()) {
      refused = c.status();
      break;
    }
    clients.push_back(*std::move(c));
  }
  ASSERT_FALSE(refused.ok()) << "200 sessions fit in 256 descriptors?";
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("sessions.fd_reserve"));
  ASSERT_GE(clients.size(), 2u);
  // The daemon is whole: its clients still move messages, axonctl still
  // gets in, and every session it made is watched (killing them all
  // releases them all).
  ASSERT_TRUE(clients[0]->BindEndpoint("src").ok());
  ASSERT_TRUE(clients[1]->BindEndpoint("dst").ok());
  ExpectMessageGoesThrough(*clients[0], *clients[1]);
  EXPECT_EQ(daemon.Ctl({"health"}).exit_code, 0);
  const int attached = Sessions(daemon).sessions_size();
  EXPECT_EQ(attached, static_cast<int>(clients.size()));
  clients.clear();
  EXPECT_TRUE(
      WaitFor([&] { return Sessions(daemon).sessions_size() == 0; }, std::chrono::seconds(10)));
  EXPECT_TRUE(Connect(daemon, "again") != nullptr);
}

TEST(LimitsTest, CallReportsAreBounded) {
  TempDir dir;
  Axond daemon(dir);
  ASSERT_TRUE(daemon.WaitReady()) << daemon.process().Log();
  auto stub = v1::Control::NewStub(rpc::MakeControlChannel(daemon.socket()));
  v1::AttachRequest attach;
  v1::AttachResponse session;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->Attach(&ctx, attach, &session).ok());
  }
  auto report = [&](int methods, std::vector<uint64_t> buckets) {
    v1::ReportCallsRequest request;
    request.set_session_id(session.session_id());
    request.set_token(session.token());
    for (int i = 0; i < methods; ++i) {
      v1::MethodCalls* m = request.add_methods();
      m->set_endpoint("e");
      m->set_method(absl::StrCat("m", i));
      for (uint64_t b : buckets) m->add_latency_below_pow2_us(b);
    }
    v1::ReportCallsResponse response;
    grpc::ClientContext ctx;
    return stub->ReportCalls(&ctx, request, &response);
  };
  EXPECT_TRUE(report(256, {1, 2, 3}).ok());
  grpc::Status too_many = report(257, {});
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(too_many.error_message(), HasSubstr("at most 256"));
  EXPECT_EQ(report(1, std::vector<uint64_t>(33, 1)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(report(1, {5, 4}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(daemon.Ctl({"health"}).exit_code, 0);
}

TEST(LimitsTest, PeerWindowHoldsSendersBackWithoutLoss) {
  // peers.max_in_flight=2: 200 messages to the other node pass a window of
  // two, in order, none lost.
  TempDir dir;
  Cluster cluster(dir, {"node-a", "node-b"}, {"peers.max_in_flight=2"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  auto a = Connect(*cluster.daemons[0], "a");
  auto b = Connect(*cluster.daemons[1], "b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->BindEndpoint("src").ok() && b->BindEndpoint("dst").ok());
  constexpr int kMessages = 200;
  auto out = a->AllocateHost(kMessages * 64);
  auto in = b->AllocateHost(kMessages * 64);
  ASSERT_TRUE(out.ok() && in.ok());
  std::vector<Operation> receives, sends;
  for (int i = 0; i < kMessages; ++i) {
    static_cast<uint8_t*>(out->data())[i * 64] = static_cast<uint8_t>(i);
    auto r = b->PostRecv("dst", 9, *in, static_cast<size_t>(i) * 64, 64);
    ASSERT_TRUE(r.ok());
    receives.push_back(*r);
  }
  for (int i = 0; i < kMessages; ++i) {
    auto s = a->Send("src", "node-b/dst", 9, *out, static_cast<size_t>(i) * 64, 64);
    ASSERT_TRUE(s.ok()) << s.status();
    sends.push_back(*s);
  }
  for (int i = 0; i < kMessages; ++i) {
    auto sent = a->Wait(sends[static_cast<size_t>(i)], 20000);
    auto got = b->Wait(receives[static_cast<size_t>(i)], 20000);
    ASSERT_TRUE(sent.ok() && got.ok());
    ASSERT_TRUE(sent->status.ok() && got->status.ok()) << sent->status << got->status;
    EXPECT_EQ(static_cast<uint8_t*>(in->data())[i * 64], static_cast<uint8_t>(i));
  }
}

}  // namespace
}  // namespace axon::testing
