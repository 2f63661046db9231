// No silent stalls: a send to a peer that stops answering fails UNAVAILABLE
// within about peers.dead_after_ms, whatever the peer's keepalives say, and
// the peer is reconnected. Faults, in network namespaces of the test's own
// joined by a veth pair: a link cut both ways and a link cut one way. (A
// peer that takes data and answers none while its keepalives flow is
// remote_path_test's, against a fake peer plane and a fake clock.) Each test prints how long the
// fault took to surface (recorded in docs/LIMITS.md, "Stalls").
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "axon/client.h"
#include "tests/support/cluster.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr int kDeadAfterMs = 1500;

struct Ends {
  std::unique_ptr<Client> a, b;
  std::optional<HostBuffer> out, in;
};

Ends Attach(const Axond& from, const Axond& to) {
  Ends e;
  auto a = Client::Connect({.socket_path = from.socket(), .client_name = "a"});
  auto b = Client::Connect({.socket_path = to.socket(), .client_name = "b"});
  EXPECT_TRUE(a.ok() && b.ok());
  if (!a.ok() || !b.ok()) return e;
  e.a = *std::move(a);
  e.b = *std::move(b);
  EXPECT_TRUE(e.a->BindEndpoint("src").ok());
  EXPECT_TRUE(e.b->BindEndpoint("dst").ok());
  auto out = e.a->AllocateHost(4096);
  auto in = e.b->AllocateHost(4096);
  EXPECT_TRUE(out.ok() && in.ok());
  if (out.ok()) e.out = *std::move(out);
  if (in.ok()) e.in = *std::move(in);
  return e;
}

// One message a -> b through a working link.
void ExpectDelivered(Ends& e, const std::string& to_node) {
  auto recv = e.b->PostRecv("dst", 1, *e.in, 0, 4096);
  ASSERT_TRUE(recv.ok());
  auto send = e.a->Send("src", to_node + "/dst", 1, *e.out, 0, 4096);
  ASSERT_TRUE(send.ok());
  auto sent = e.a->Wait(*send, 20000);
  ASSERT_TRUE(sent.ok());
  EXPECT_TRUE(sent->status.ok()) << sent->status;
  auto got = e.b->Wait(*recv, 20000);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->status.ok()) << got->status;
}

// Sends a -> b and waits for the send to fail; returns how long it took.
Clock::duration SendUntilItFails(Ends& e, const std::string& to_node, absl::Status& status) {
  const auto start = Clock::now();
  auto send = e.a->Send("src", to_node + "/dst", 2, *e.out, 0, 4096);
  EXPECT_TRUE(send.ok());
  if (!send.ok()) return {};
  auto done = e.a->Wait(*send, 60000);
  EXPECT_TRUE(done.ok()) << "the send neither completed nor failed within 60 s";
  if (done.ok()) status = done->status;
  return Clock::now() - start;
}

void Report(const char* fault, Clock::duration took) {
  const long ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  std::printf("[ surfaced ] %s: %ld ms (peers.dead_after_ms %d)\n", fault, ms, kDeadAfterMs);
  ::testing::Test::RecordProperty(fault, std::to_string(ms));
}

// Two network namespaces joined by a veth pair, each daemon in its own.
class NetnsStallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string tag = std::to_string(::getpid() % 100000);
    ns_a_ = "axa" + tag;
    ns_b_ = "axb" + tag;
    const int subnet = static_cast<int>(::getpid() % 250);
    addr_a_ = absl::StrCat("10.77.", subnet, ".1");
    addr_b_ = absl::StrCat("10.77.", subnet, ".2");
    if (!Ip({"netns", "add", ns_a_})) {
      GTEST_SKIP() << "cannot make network namespaces here (needs root / CAP_NET_ADMIN)";
    }
    made_ = true;
    ASSERT_TRUE(Ip({"netns", "add", ns_b_}));
    ASSERT_TRUE(Ip({"link", "add", "va" + tag, "netns", ns_a_, "type", "veth", "peer", "name",
                    "vb" + tag, "netns", ns_b_}));
    veth_a_ = "va" + tag;
    veth_b_ = "vb" + tag;
    for (const auto& [ns, dev, addr] :
         {std::tuple{ns_a_, veth_a_, addr_a_}, std::tuple{ns_b_, veth_b_, addr_b_}}) {
      ASSERT_TRUE(Ip({"-n", ns, "addr", "add", addr + "/24", "dev", dev}));
      ASSERT_TRUE(Ip({"-n", ns, "link", "set", dev, "up"}));
      ASSERT_TRUE(Ip({"-n", ns, "link", "set", "lo", "up"}));
    }
    // UCX takes only interfaces that are running when it starts: wait for
    // the veth's carrier on both ends.
    for (const auto& [ns, dev] : {std::pair{ns_a_, veth_a_}, std::pair{ns_b_, veth_b_}}) {
      ASSERT_TRUE(WaitFor(
          [&] {
            return RunProgram({"/usr/sbin/ip", "-n", ns, "-o", "link", "show", "dev", dev})
                       .out.find("LOWER_UP") != std::string::npos;
          },
          std::chrono::seconds(10)));
    }
    const std::string peers =
        absl::StrCat("peers.static=[{name: node-a, address: \"", addr_a_,
                     ":13337\"}, {name: node-b, ", "address: \"", addr_b_, ":13337\"}]");
    // TCP only: on one host UCX would otherwise carry the data over shared
    // memory, past the link the test cuts.
    const std::vector<std::string> common = {
        peers, "ucx.transports=tcp,self", "peers.keepalive_ms=300",
        absl::StrCat("peers.dead_after_ms=", kDeadAfterMs), "peers.reconnect_max_ms=1000"};
    auto sets = [&](const std::string& addr) {
      std::vector<std::string> s = common;
      s.push_back("peers.listen=" + addr + ":13337");
      return s;
    };
    a_ = std::make_unique<Axond>(dir_,
                                 AxondOptions{.node_name = "node-a",
                                              .sets = sets(addr_a_),
                                              .wrapper = {"/usr/sbin/ip", "netns", "exec", ns_a_}});
    b_ = std::make_unique<Axond>(dir_,
                                 AxondOptions{.node_name = "node-b",
                                              .sets = sets(addr_b_),
                                              .wrapper = {"/usr/sbin/ip", "netns", "exec", ns_b_}});
    ASSERT_TRUE(a_->WaitReady()) << a_->process().Log();
    ASSERT_TRUE(b_->WaitReady()) << b_->process().Log();
    ASSERT_TRUE(
        WaitFor([&] { return Up(*a_, "node-b") && Up(*b_, "node-a"); }, std::chrono::seconds(20)))
        << a_->process().Log() << b_->process().Log();
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    if (made_) {
      Ip({"netns", "del", ns_a_});
      Ip({"netns", "del", ns_b_});
    }
  }
  static bool Ip(std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/sbin/ip");
    const RunResult r = RunProgram(args);
    if (r.exit_code != 0) std::fprintf(stderr, "ip: %s\n", r.err.c_str());
    return r.exit_code == 0;
  }
  // Cuts (or restores) what `dev` sends: an HTB class of 8 bit/s, through
  // which nothing of a TCP segment's size passes in the test's time
  // (netem and the tc classifiers are not in every kernel; HTB is).
  static bool Cut(const std::string& ns, const std::string& dev, bool cut) {
    const std::string tc = "/usr/sbin/tc";
    if (!cut) return RunProgram({tc, "-n", ns, "qdisc", "del", "dev", dev, "root"}).exit_code == 0;
    return RunProgram({tc, "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb",
                       "default", "1"})
                   .exit_code == 0 &&
           RunProgram({tc, "-n", ns, "class", "add", "dev", dev, "parent", "1:", "classid", "1:1",
                       "htb", "rate", "8bit", "ceil", "8bit"})
                   .exit_code == 0;
  }
  static bool Up(const Axond& d, const std::string& peer) { return PeerState(d, peer) == "up"; }

  TempDir dir_;
  bool made_ = false;
  std::string ns_a_, ns_b_, veth_a_, veth_b_, addr_a_, addr_b_;
  std::unique_ptr<Axond> a_, b_;
};

TEST_F(NetnsStallTest, LinkCutBothWays) {
  Ends e = Attach(*a_, *b_);
  ASSERT_TRUE(e.a && e.in);
  ExpectDelivered(e, "node-b");
  ASSERT_TRUE(Cut(ns_a_, veth_a_, true));
  ASSERT_TRUE(Cut(ns_b_, veth_b_, true));
  absl::Status status;
  const auto took = SendUntilItFails(e, "node-b", status);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_LE(took, std::chrono::milliseconds(kDeadAfterMs + 2000));
  Report("link cut both ways", took);
  ASSERT_TRUE(Cut(ns_a_, veth_a_, false));
  ASSERT_TRUE(Cut(ns_b_, veth_b_, false));
  EXPECT_TRUE(WaitFor([&] { return Up(*a_, "node-b"); }, std::chrono::seconds(20)));
  ExpectDelivered(e, "node-b");
}

TEST_F(NetnsStallTest, LinkCutOneWay) {
  Ends e = Attach(*a_, *b_);
  ASSERT_TRUE(e.a && e.in);
  ExpectDelivered(e, "node-b");
  // a -> b is lost; b -> a, b's keepalives included, still arrives.
  ASSERT_TRUE(Cut(ns_a_, veth_a_, true));
  absl::Status status;
  const auto took = SendUntilItFails(e, "node-b", status);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_LE(took, std::chrono::milliseconds(kDeadAfterMs + 2000));
  Report("link cut one way (a to b)", took);
  ASSERT_TRUE(Cut(ns_a_, veth_a_, false));
  EXPECT_TRUE(WaitFor([&] { return Up(*a_, "node-b"); }, std::chrono::seconds(20)));
  ExpectDelivered(e, "node-b");
}

}  // namespace
}  // namespace axon::testing
