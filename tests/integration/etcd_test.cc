// Membership through a real etcd (Debian's etcd-server, started here on
// loopback ports): daemons that find each other with no peers configured,
// leave cleanly, die and expire with their lease, come back as a new
// incarnation, and ride out etcd stopping, pausing past a lease TTL, and being
// absent at their start. Sixteen daemons: etcd_cluster_test.cc; etcd with
// authentication and TLS: etcd_auth_test.cc.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "axon/client.h"
#include "daemon/membership/member.h"
#include "daemon/membership/member_table.h"
#include "daemon/peer/dial_rules.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "tests/integration/etcd_fixture.h"
#include "tests/support/fake_peer.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

TEST_F(EtcdTest, DaemonsFindEachOtherAndConnectOnFirstUse) {
  ASSERT_NO_FATAL_FAILURE(Launch(0, "n1"));
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2"));
  ASSERT_TRUE(WaitFor([&] { return BothListed(); }, 15s)) << daemons_[0]->process().Log();
  auto nodes = Nodes(0);
  EXPECT_EQ(nodes.discovery(), "etcd");
  EXPECT_TRUE(nodes.registered());
  EXPECT_TRUE(nodes.watching());
  ASSERT_EQ(nodes.nodes_size(), 1);
  EXPECT_EQ(nodes.nodes(0).name(), "n2");
  EXPECT_EQ(nodes.nodes(0).address(), Address(1));
  EXPECT_NE(nodes.nodes(0).incarnation(), 0u);
  EXPECT_FALSE(nodes.nodes(0).connected());  // nothing was sent yet
  EXPECT_NE(StateOf(0, "n2"), "up");
  EXPECT_EQ(MembershipHealth(0), "ok");

  // The first message from n1 to n2 opens the connection and arrives.
  auto receiver = Client::Connect({.socket_path = daemons_[1]->socket()});
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  ASSERT_TRUE((*receiver)->BindEndpoint("b").ok());
  auto dst = (*receiver)->AllocateHost(64);
  ASSERT_TRUE(dst.ok());
  auto recv = (*receiver)->PostRecv("b", 5, *dst, 0, 64);
  ASSERT_TRUE(recv.ok()) << recv.status();
  auto sender = Client::Connect({.socket_path = daemons_[0]->socket()});
  ASSERT_TRUE(sender.ok()) << sender.status();
  ASSERT_TRUE((*sender)->BindEndpoint("a").ok());
  auto src = (*sender)->AllocateHost(64);
  ASSERT_TRUE(src.ok());
  std::memset(src->data(), 0x5a, 64);
  auto send = (*sender)->Send("a", "n2/b", 5, *src, 0, 64);
  ASSERT_TRUE(send.ok()) << send.status();
  auto sent = (*sender)->Wait(*send, 15000);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_TRUE(sent->status.ok()) << sent->status;
  auto got = (*receiver)->Wait(*recv, 15000);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->status.ok()) << got->status;
  EXPECT_EQ(static_cast<const uint8_t*>(dst->data())[63], 0x5a);
  EXPECT_TRUE(BothUp());
  nodes = Nodes(0);
  ASSERT_EQ(nodes.nodes_size(), 1);
  EXPECT_TRUE(nodes.nodes(0).connected());
  RunResult text = daemons_[0]->Ctl({"nodes"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_THAT(text.out, HasSubstr("n2"));
  EXPECT_THAT(text.out, HasSubstr("registered, watching"));
  receiver->reset();
  sender->reset();

  // A clean stop deletes the record: n1 sees it well before the lease could
  // have expired, and n2 is no longer a peer.
  const auto stopped_at = std::chrono::steady_clock::now();
  daemons_[1].reset();
  EXPECT_TRUE(WaitFor([&] { return !Lists(0, "n2"); }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, std::chrono::milliseconds(kLeaseTtlMs));
  EXPECT_TRUE(WaitFor([&] { return StateOf(0, "n2") == "absent"; }, 5s)) << StateOf(0, "n2");
}

TEST_F(EtcdTest, AnIdleConnectionClosesAndOpensAgainOnUse) {
  ASSERT_NO_FATAL_FAILURE(Launch(0, "n1", {"peers.idle_close_ms=3000"}));
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2", {"peers.idle_close_ms=3000"}));
  ASSERT_TRUE(WaitFor([&] { return BothListed(); }, 15s));
  ASSERT_TRUE(Ping(0, "n2"));
  ASSERT_TRUE(WaitFor([&] { return BothUp(); }, 5s));
  // Keepalives do not count as use: both close it, by agreement.
  EXPECT_TRUE(WaitFor([&] { return StateOf(0, "n2") != "up" && StateOf(1, "n1") != "up"; }, 15s));
  for (auto [i, peer] : {std::pair<size_t, std::string>{0, "n2"}, {1, "n1"}}) {
    const auto peers = daemons_[i]->CtlJson<v1::ListPeersResponse>({"peers"});
    ASSERT_EQ(peers.peers_size(), 1);
    EXPECT_THAT(peers.peers(0).last_error(), HasSubstr("idle")) << peer;
  }
  EXPECT_TRUE(Lists(0, "n2"));  // still a member
  // The next use opens it again.
  EXPECT_TRUE(Ping(1, "n1"));
  EXPECT_TRUE(WaitFor([&] { return BothUp(); }, 5s));
}

TEST_F(EtcdTest, TwoDaemonsDialingEachOtherAtOnceKeepOneConnection) {
  ASSERT_NO_FATAL_FAILURE(Launch(0, "n1"));
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2"));
  ASSERT_TRUE(WaitFor([&] { return BothListed(); }, 15s));
  bool one = false, two = false;
  std::thread a([&] { one = Ping(0, "n2"); });
  std::thread b([&] { two = Ping(1, "n1"); });
  a.join();
  b.join();
  EXPECT_TRUE(one);
  EXPECT_TRUE(two);
  EXPECT_TRUE(WaitFor([&] { return BothUp(); }, 5s));
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(BothUp());
  EXPECT_EQ(ReconnectsOf(0, "n2"), 0u);
  EXPECT_EQ(ReconnectsOf(1, "n1"), 0u);
}

// Two daemons whose clients send to each other at the same moment dial each
// other at once, round after round (the connection closes when idle in
// between). Every other round n2 stalls (SIGSTOP) mid-handshake, so n1 has
// refused n2's dial long before n2 can act on the refusal. The connection
// both keep must outlive the one they drop: each round's messages arrive,
// and so do those of a second exchange made once the dropped one is gone.
TEST_F(EtcdTest, CrossedDialsRoundAfterRoundLoseNothing) {
  const std::vector<std::string> quick = {"peers.keepalive_ms=250", "peers.dead_after_ms=1000",
                                          "peers.idle_close_ms=2000"};
  ASSERT_NO_FATAL_FAILURE(Launch(0, "n1", quick));
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2", quick));
  ASSERT_TRUE(WaitFor([&] { return BothListed(); }, 15s));
  const std::string names[2] = {"n1", "n2"};
  std::unique_ptr<Client> clients[2];
  std::optional<HostBuffer> in[2], out[2];
  for (size_t i = 0; i < 2; ++i) {
    auto c = Client::Connect({.socket_path = daemons_[i]->socket()});
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE((*c)->BindEndpoint("e").ok());
    auto a = (*c)->AllocateHost(64);
    auto b = (*c)->AllocateHost(64);
    ASSERT_TRUE(a.ok() && b.ok());
    clients[i] = *std::move(c);
    in[i].emplace(*std::move(a));
    out[i].emplace(*std::move(b));
  }
  // Both clients send at once (released together), each to the other.
  auto exchange = [&](uint64_t tag, int pause = -1) {
    Operation recvs[2];
    for (size_t i = 0; i < 2; ++i) {
      auto r = clients[i]->PostRecv("e", tag, *in[i], 0, 64);
      ASSERT_TRUE(r.ok()) << r.status();
      recvs[i] = *r;
      std::memset(out[i]->data(), static_cast<int>(tag * 2 + i), 64);
    }
    std::atomic<bool> go{false};
    absl::StatusOr<Operation> sends[2] = {absl::UnknownError("not sent"),
                                          absl::UnknownError("not sent")};
    std::thread threads[2];
    for (size_t i = 0; i < 2; ++i) {
      threads[i] = std::thread([&, i] {
        while (!go.load()) {
        }
        sends[i] = clients[i]->Send("e", names[1 - i] + "/e", tag, *out[i], 0, 64);
      });
    }
    go = true;
    for (auto& t : threads) t.join();
    if (pause >= 0) {  // n2 stalls mid-handshake, past when n1 refuses its dial
      std::this_thread::sleep_for(std::chrono::milliseconds(pause));
      daemons_[1]->process().Signal(SIGSTOP);
      std::this_thread::sleep_for(350ms);
      daemons_[1]->process().Signal(SIGCONT);
    }
    for (size_t i = 0; i < 2; ++i) {
      ASSERT_TRUE(sends[i].ok()) << sends[i].status();
      auto done = clients[i]->Wait(*sends[i], 15000);
      ASSERT_TRUE(done.ok()) << done.status();
      EXPECT_TRUE(done->status.ok())
          << "tag " << tag << " from " << names[i] << ": " << done->status;
    }
    for (size_t i = 0; i < 2; ++i) {
      auto done = clients[i]->Wait(recvs[i], 15000);
      ASSERT_TRUE(done.ok()) << done.status();
      ASSERT_TRUE(done->status.ok()) << "tag " << tag << " at " << names[i] << ": " << done->status;
      EXPECT_EQ(size_t{static_cast<const uint8_t*>(in[i]->data())[63]}, tag * 2 + (1 - i));
    }
  };
  for (uint64_t round = 0; round < 4; ++round) {
    ASSERT_TRUE(WaitFor([&] { return StateOf(0, "n2") != "up" && StateOf(1, "n1") != "up"; }, 15s));
    ASSERT_NO_FATAL_FAILURE(exchange(round * 2, round % 2 ? static_cast<int>(round) : -1));
    // A refused connection is swept within a few hundred milliseconds.
    std::this_thread::sleep_for(400ms);
    ASSERT_NO_FATAL_FAILURE(exchange(round * 2 + 1));
  }
}

// A dial refused as the loser of crossed dials waits for the winner's own
// dial. When that never comes, the sends waiting for the connection fail
// once the handshake's time is up, as with any connection that fails,
// rather than wait on. The winner here is a fake member "n0" whose record
// the test writes in etcd; it refuses every dial as crossed and never dials.
TEST_F(EtcdTest, ADialLostToACrossingThatNeverComesFailsItsSends) {
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2", {"peers.keepalive_ms=250", "peers.dead_after_ms=1000"}));
  auto fake = FakePeer::Start("n0");
  ASSERT_TRUE(fake.ok()) << fake.status();
  auto address = (*fake)->ListenAndReject(std::string(daemon::kCrossedDials));
  ASSERT_TRUE(address.ok()) << address.status();
  const daemon::Member n0{.name = "n0",
                          .address = *address,
                          .wire_version = wire::kVersion,
                          .incarnation = 7,
                          .started = absl::Now()};
  {
    auto kv = etcdserverpb::KV::NewStub(
        grpc::CreateChannel(etcd_->endpoint(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    etcdserverpb::PutRequest put;
    put.set_key(daemon::MemberTable::KeyOf("/axon-test/", "n0"));
    put.set_value(daemon::EncodeMember(n0));
    etcdserverpb::PutResponse put_done;
    ASSERT_TRUE(kv->Put(&context, put, &put_done).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return Lists(1, "n0"); }, 15s)) << daemons_[1]->process().Log();

  auto client = Client::Connect({.socket_path = daemons_[1]->socket()});
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->BindEndpoint("e").ok());
  auto buffer = (*client)->AllocateHost(64);
  ASSERT_TRUE(buffer.ok());
  auto send = (*client)->Send("e", "n0/e", 1, *buffer, 0, 64);  // no deadline of its own
  ASSERT_TRUE(send.ok()) << send.status();
  auto done = (*client)->Wait(*send, 10000);
  ASSERT_TRUE(done.ok()) << done.status() << "\n" << daemons_[1]->process().Log();
  EXPECT_EQ(done->status.code(), absl::StatusCode::kUnavailable) << done->status;
  EXPECT_THAT(done->status.message(), HasSubstr("handshake did not finish"));
  // n2 did dial n0, and waited for n0's dial rather than failing at the reject.
  EXPECT_TRUE((*fake)->Await(wire::MessageType::kHello, 1000ms).ok());
}

TEST_F(EtcdTest, AKilledDaemonGoesWithItsLeaseAndSendsToItFail) {
  ASSERT_NO_FATAL_FAILURE(Join());
  auto client = Client::Connect({.socket_path = daemons_[0]->socket()});
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->BindEndpoint("a").ok());
  auto src = (*client)->AllocateHost(64);
  ASSERT_TRUE(src.ok());

  daemons_[1]->process().Signal(SIGKILL);
  daemons_[1]->process().Wait(5s);
  // Gone from etcd once its lease runs out, and from n1's members.
  EXPECT_TRUE(
      WaitFor([&] { return !Lists(0, "n2"); }, std::chrono::milliseconds(kLeaseTtlMs) + 5s));
  auto send = (*client)->Send("a", "n2/b", 1, *src, 0, 64);
  ASSERT_TRUE(send.ok());
  auto done = (*client)->Wait(*send, 10000);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status.code(), absl::StatusCode::kUnavailable) << done->status;
  EXPECT_THAT(std::string(done->status.message()), HasSubstr("left the cluster"));
  daemons_[1].reset();
}

TEST_F(EtcdTest, ADaemonRestartedUnderItsNameIsANewPeer) {
  ASSERT_NO_FATAL_FAILURE(Join());
  const uint64_t first = IncarnationOf(0, "n2");
  ASSERT_NE(first, 0u);
  daemons_[1]->process().Signal(SIGKILL);
  daemons_[1]->process().Wait(5s);
  daemons_[1].reset();
  // Back at once, before its old record expired: the new incarnation replaces
  // it and the connection is made again.
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2"));
  EXPECT_TRUE(WaitFor(
      [&] {
        const uint64_t now = IncarnationOf(0, "n2");
        return now != 0 && now != first;
      },
      10s));
  EXPECT_TRUE(Ping(0, "n2")) << daemons_[0]->process().Log();
  EXPECT_TRUE(WaitFor([&] { return BothUp(); }, 5s));
}

TEST_F(EtcdTest, EtcdStoppedAndStartedAgainLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(Join());
  etcd_->Stop();
  EXPECT_TRUE(WaitFor([&] { return MembershipHealth(0) == "DEGRADED"; }, 10s));
  EXPECT_EQ(daemons_[0]->Ctl({"health"}).exit_code, 0);  // degraded is not a failure
  std::this_thread::sleep_for(std::chrono::milliseconds(kLeaseTtlMs));
  EXPECT_TRUE(BothUp());  // nothing working is dropped because etcd went
  etcd_->Start();
  EXPECT_TRUE(
      WaitFor([&] { return MembershipHealth(0) == "ok" && MembershipHealth(1) == "ok"; }, 15s));
  EXPECT_TRUE(Lists(0, "n2"));
  EXPECT_TRUE(Lists(1, "n1"));
  EXPECT_TRUE(BothUp());
  EXPECT_EQ(ReconnectsOf(0, "n2"), 0u);
}

TEST_F(EtcdTest, EtcdPausedPastTheLeaseTtlDropsNoConnection) {
  ASSERT_NO_FATAL_FAILURE(Join());
  etcd_->Pause();
  EXPECT_TRUE(WaitFor([&] { return MembershipHealth(0) == "DEGRADED"; }, 10s));
  std::this_thread::sleep_for(std::chrono::milliseconds(kLeaseTtlMs + 1000));
  etcd_->Resume();
  // etcd may expire the leases as it wakes; the daemons register again and
  // their connection, which kept answering, stays.
  EXPECT_TRUE(
      WaitFor([&] { return MembershipHealth(0) == "ok" && MembershipHealth(1) == "ok"; }, 15s));
  EXPECT_TRUE(WaitFor([&] { return Lists(0, "n2") && Lists(1, "n1"); }, 10s));
  std::this_thread::sleep_for(std::chrono::milliseconds(kLeaseTtlMs));
  EXPECT_TRUE(BothUp());
  EXPECT_EQ(ReconnectsOf(0, "n2"), 0u);
  EXPECT_EQ(ReconnectsOf(1, "n1"), 0u);
}

class EtcdLateTest : public EtcdTest {
 protected:
  EtcdLateTest() { etcd_first_ = false; }
};

TEST_F(EtcdLateTest, DaemonsStartWithoutEtcdAndJoinWhenItComes) {
  ASSERT_NO_FATAL_FAILURE(Launch(0, "n1"));
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2"));
  EXPECT_EQ(daemons_[0]->Ctl({"health"}).exit_code, 0);
  EXPECT_EQ(MembershipHealth(0), "DEGRADED");
  EXPECT_FALSE(Nodes(0).registered());
  etcd_->Start();
  EXPECT_TRUE(WaitFor([&] { return BothListed(); }, 20s))
      << Nodes(0).last_error() << "\n"
      << daemons_[0]->process().Log() << "\netcd:\n"
      << etcd_->Log();
  EXPECT_TRUE(WaitFor([&] { return MembershipHealth(1) == "ok"; }, 10s));
  EXPECT_TRUE(Ping(1, "n1"));
}

TEST_F(EtcdTest, ASecondDaemonClaimingANameInUseIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Launch(0, "n1"));
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2"));
  ASSERT_TRUE(WaitFor([&] { return BothListed(); }, 15s));
  // Another n1, elsewhere: it does not join, and says why.
  ASSERT_NO_FATAL_FAILURE(Launch(2, "n1"));
  EXPECT_TRUE(WaitFor([&] { return MembershipHealth(2) == "FAIL"; }, 10s));
  RunResult health = daemons_[2]->Ctl({"health"});
  EXPECT_EQ(health.exit_code, 1);
  EXPECT_THAT(health.out, HasSubstr("node name 'n1' is taken by the daemon at " + Address(0)));
  EXPECT_FALSE(Nodes(2).registered());
  // The first n1 is untouched: n2 still knows it at its own address.
  const auto nodes = Nodes(1);
  ASSERT_EQ(nodes.nodes_size(), 1);
  EXPECT_EQ(nodes.nodes(0).address(), Address(0));
  EXPECT_TRUE(Ping(1, "n1"));
  EXPECT_EQ(MembershipHealth(0), "ok");
}

}  // namespace
}  // namespace axon::testing
