// Three real daemons on loopback, each with its own socket, port and name:
// they connect, notice a killed or frozen peer within the bound, reconnect,
// refuse a wrong token or a mismatched wire version, and answer pings.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <thread>

#include "axon/v1/admin.pb.h"
#include "tests/support/cluster.h"
#include "tests/support/fake_peer.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

// The bound: a dead peer is noticed within 5 s by default; the tests
// run with dead_after 1.5 s and allow the full 5 s for slow sanitizer builds.
constexpr auto kBound = std::chrono::seconds(5);

TEST(PeersTest, ThreeDaemonsSeeEachOtherUp) {
  TempDir dir;
  Cluster cluster(dir);
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)))
      << cluster.daemons[0]->process().Log();
  auto peers = cluster.Peers(0);
  ASSERT_EQ(peers.peers_size(), 2);
  // UCX reports the transports of each lane from 1.14 on.
  v1::StatusResponse status;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  cluster.daemons[0]->Ctl({"--json", "status"}).out, &status)
                  .ok());
  int major = 0, minor = 0;
  ASSERT_EQ(std::sscanf(status.ucx().version().c_str(), "%d.%d", &major, &minor), 2);
  const bool lanes_reported = major > 1 || minor >= 14;
  for (const auto& p : peers.peers()) {
    EXPECT_EQ(p.transports().empty(), !lanes_reported) << p.name();
    EXPECT_GT(p.messages_sent(), 0u);
    EXPECT_GT(p.bytes_received(), 0u);
  }
  RunResult text = cluster.daemons[1]->Ctl({"peers"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_THAT(text.out, HasSubstr("n1"));
  EXPECT_THAT(text.out, HasSubstr("up"));
}

TEST(PeersTest, KilledPeerIsNoticedAndComesBack) {
  TempDir dir;
  Cluster cluster(dir);
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  cluster.daemons[2]->process().Signal(SIGKILL);
  cluster.daemons[2]->process().Wait(std::chrono::seconds(5));
  const auto killed_at = std::chrono::steady_clock::now();
  EXPECT_TRUE(
      WaitFor([&] { return cluster.StateOf(0, "n3") != "up" && cluster.StateOf(1, "n3") != "up"; },
              kBound));
  std::cerr << "kill -9 noticed after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - killed_at)
                   .count()
            << " ms\n";
  EXPECT_EQ(cluster.StateOf(0, "n2"), "up");  // the others are undisturbed
  cluster.Start(2);
  EXPECT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)))
      << cluster.daemons[0]->process().Log();
}

TEST(PeersTest, FrozenPeerIsNoticedAndComesBack) {
  TempDir dir;
  Cluster cluster(dir);
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  cluster.daemons[1]->process().Signal(SIGSTOP);
  const auto stopped_at = std::chrono::steady_clock::now();
  EXPECT_TRUE(
      WaitFor([&] { return cluster.StateOf(0, "n2") != "up" && cluster.StateOf(2, "n2") != "up"; },
              kBound));
  std::cerr << "SIGSTOP noticed after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - stopped_at)
                   .count()
            << " ms\n";
  EXPECT_THAT(cluster.daemons[0]->process().Log(), HasSubstr("peer n2 down"));
  cluster.daemons[1]->process().Signal(SIGCONT);
  EXPECT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(20)))
      << cluster.daemons[0]->process().Log();
}

TEST(PeersTest, PingReportsPlausibleRoundTrips) {
  TempDir dir;
  Cluster cluster(dir, {"n1", "n2"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  RunResult r =
      cluster.daemons[0]->Ctl({"--json", "ping", "n2", "--count", "50", "--size", "4096"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::PingResponse ping;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &ping).ok()) << r.out;
  ASSERT_EQ(ping.rtt_us_size(), 50);
  EXPECT_GT(ping.min_us(), 0.0);
  EXPECT_LE(ping.min_us(), ping.median_us());
  EXPECT_LE(ping.median_us(), ping.p99_us());
  EXPECT_LT(ping.median_us(), 1e6);  // a loopback round trip is far under a second
  // A large payload goes rendezvous and still comes back.
  RunResult big = cluster.daemons[1]->Ctl({"ping", "n1", "--count", "3", "--size", "4194304"});
  EXPECT_EQ(big.exit_code, 0) << big.err;
  EXPECT_THAT(big.out, HasSubstr("3 round trips of 4194304 bytes"));
  RunResult unknown = cluster.daemons[0]->Ctl({"ping", "nobody"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("no node 'nobody' among the peers"));
}

void WriteToken(const std::string& path, const std::string& token) {
  WriteFile(path, token + "\n");
  ::chmod(path.c_str(), 0600);
}

TEST(PeersTest, WrongTokenIsRefusedWithTheReason) {
  TempDir dir;
  WriteToken(dir.File("good.token"), "correct horse battery staple");
  WriteToken(dir.File("bad.token"), "an entirely different secret");
  Cluster cluster(dir, {"n1", "n2"}, {"peers.token_file=" + dir.File("good.token")});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)))
      << cluster.daemons[0]->process().Log();
  // n2 comes back with the wrong token.
  cluster.Start(1, {}, {"peers.token_file=" + dir.File("bad.token")});
  EXPECT_TRUE(WaitFor(
      [&] {
        return cluster.daemons[0]->process().Log().find("wrong token") != std::string::npos &&
               cluster.daemons[1]->process().Log().find("wrong token") != std::string::npos;
      },
      std::chrono::seconds(10)))
      << cluster.daemons[0]->process().Log() << cluster.daemons[1]->process().Log();
  EXPECT_NE(cluster.StateOf(0, "n2"), "up");
  EXPECT_NE(cluster.StateOf(1, "n1"), "up");
}

// A peer that speaks a future wire version: a UCX connection of the test's
// own to n2's listener, whose Hello travels under version 9.
TEST(PeersTest, MismatchedWireVersionIsRefusedWithTheReason) {
  TempDir dir;
  Cluster cluster(dir, {"n1", "n2"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  auto peer = FakePeer::Start("n1");
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->Dial(cluster.Address(1), /*version=*/9).ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        return cluster.daemons[1]->process().Log().find("wire protocol version 9") !=
               std::string::npos;
      },
      std::chrono::seconds(10)))
      << cluster.daemons[1]->process().Log();
  EXPECT_THAT(cluster.daemons[1]->process().Log(), HasSubstr("refused a connection"));
  // The real n1 stays up: a stranger's refusal is not its own.
  EXPECT_EQ(cluster.StateOf(1, "n1"), "up");
}

TEST(PeersTest, UnknownNameIsRefused) {
  TempDir dir;
  // n1 knows n2, but n2's list does not name n1 (it names "other").
  const std::string a1 = "127.0.0.1:" + std::to_string(BasePort() + 5);
  const std::string a2 = "127.0.0.1:" + std::to_string(BasePort() + 6);
  Axond n2(dir, {.node_name = "n2",
                 .sets = {"peers.listen=" + a2,
                          "peers.static=[{name: other, address: \"127.0.0.1:1\"}]"}});
  ASSERT_TRUE(n2.WaitReady()) << n2.process().Log();
  Axond n1(dir,
           {.node_name = "n1",
            .sets = {"peers.listen=" + a1, "peers.static=[{name: n2, address: \"" + a2 + "\"}]"}});
  ASSERT_TRUE(n1.WaitReady()) << n1.process().Log();
  EXPECT_TRUE(WaitFor(
      [&] { return n2.process().Log().find("unknown node name 'n1'") != std::string::npos; },
      std::chrono::seconds(10)))
      << n2.process().Log();
  EXPECT_TRUE(
      WaitFor([&] { return n1.process().Log().find("refused by the peer") != std::string::npos; },
              std::chrono::seconds(10)))
      << n1.process().Log();
}

// A peer that nobody answers for is redialed every few milliseconds here;
// its log says so once, not once a redial, and its failed dials are counted.
TEST(PeersTest, AnUnreachablePeerIsLoggedOnce) {
  TempDir dir;
  const std::string a1 = "127.0.0.1:" + std::to_string(BasePort() + 7);
  const std::string nobody = "127.0.0.1:" + std::to_string(BasePort() + 8);
  Axond n1(dir,
           {.node_name = "n1",
            .sets = {"peers.listen=" + a1, "peers.static=[{name: n2, address: \"" + nobody + "\"}]",
                     "peers.reconnect_min_ms=10", "peers.reconnect_max_ms=20"}});
  ASSERT_TRUE(n1.WaitReady()) << n1.process().Log();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // a redial every tick
  const std::string log = n1.process().Log();
  size_t lines = 0;
  for (size_t at = log.find("peer n2: connection failed"); at != std::string::npos;
       at = log.find("peer n2: connection failed", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << log;
  // The count of failed dials is on the peer list (and in the metrics).
  const auto listed = n1.CtlJson<v1::ListPeersResponse>({"peers"});
  ASSERT_EQ(listed.peers_size(), 1);
  EXPECT_GE(listed.peers(0).failed_dials(), 2u);
  EXPECT_THAT(n1.Ctl({"peers"}).out, HasSubstr("dials failed)"));
}

TEST(PeersTest, DuplicateNameIsRefused) {
  TempDir dir;
  auto address = [](int i) { return "127.0.0.1:" + std::to_string(BasePort() + i); };
  auto peers = [&](const std::string& a_address) {
    return "peers.static=[{name: a, address: \"" + a_address + "\"}, {name: z, address: \"" +
           address(7) + "\"}]";
  };
  // z sorts last, so it waits to be dialled; two daemons both named "a" dial it.
  Axond z(dir, {.node_name = "z", .sets = {"peers.listen=" + address(7), peers(address(8))}});
  ASSERT_TRUE(z.WaitReady()) << z.process().Log();
  Axond first(dir, {.node_name = "a",
                    .instance = "a-first",
                    .sets = {"peers.listen=" + address(8), peers(address(8))}});
  ASSERT_TRUE(first.WaitReady()) << first.process().Log();
  ASSERT_TRUE(WaitFor([&] { return z.process().Log().find("peer a up") != std::string::npos; },
                      std::chrono::seconds(10)))
      << z.process().Log();
  Axond second(dir, {.node_name = "a",
                     .instance = "a-second",
                     .sets = {"peers.listen=" + address(9), peers(address(9))}});
  ASSERT_TRUE(second.WaitReady()) << second.process().Log();
  EXPECT_TRUE(WaitFor(
      [&] {
        return z.process().Log().find("duplicate name: node 'a' is already connected") !=
                   std::string::npos &&
               second.process().Log().find("refused by the peer: duplicate name") !=
                   std::string::npos;
      },
      std::chrono::seconds(10)))
      << z.process().Log() << second.process().Log();
  // The first "a" keeps its connection.
  EXPECT_THAT(first.Ctl({"peers"}).out, HasSubstr("up"));
}

}  // namespace
}  // namespace axon::testing
