// Shard links (engine.remote: own): engine shard k of one daemon sends to and
// receives from shard k of another on endpoints of its own, not through
// shard 0. Messages between any two shards of two nodes arrive whole and in
// order per pair; the peers list shows the links and what they carried; a
// peer with fewer shards, or engine.remote: shard0, takes the way through
// shard 0; a peer that dies fails what waits on the links, and the links
// come back with it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "tests/support/axond.h"
#include "tests/support/cluster.h"

namespace axon {
namespace {

using testing::Cluster;
using testing::TempDir;
using testing::WaitFor;

constexpr int kMessages = 200, kSize = 512;

struct Node {
  std::vector<std::unique_ptr<Client>> clients;  // client i on shard i
  std::vector<HostBuffer> buffers;
};

// `count` clients on daemon `d` of `cluster`, named `prefix`0.. and bound to
// endpoints of those names: a new client goes to the shard serving the
// fewest sessions, shard 0 first, so client i is on shard i.
Node Attach(Cluster& cluster, size_t d, const std::string& prefix, int count) {
  Node n;
  for (int i = 0; i < count; ++i) {
    const std::string name = prefix + std::to_string(i);
    auto c = Client::Connect({.socket_path = cluster.daemons[d]->socket(), .client_name = name});
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return n;
    EXPECT_TRUE((*c)->BindEndpoint(name).ok());
    auto buffer = (*c)->AllocateHost(size_t{kMessages} * kSize);
    EXPECT_TRUE(buffer.ok());
    if (!buffer.ok()) return n;
    n.buffers.push_back(*std::move(buffer));
    n.clients.push_back(*std::move(c));
  }
  return n;
}

// kMessages from a's client `from` to b's client `to` (node `b_node`),
// checked whole and in order.
void SendAndCheck(Node& a, int from, Node& b, int to, const std::string& b_node) {
  Client& tx = *a.clients[from];
  Client& rx = *b.clients[to];
  const std::string tx_name = "a" + std::to_string(from), rx_name = "b" + std::to_string(to);
  const uint64_t tag = 100 + from * 10 + to;
  std::vector<Operation> receives, sends;
  for (int m = 0; m < kMessages; ++m) {
    auto op = rx.PostRecv(rx_name, tag, b.buffers[to], size_t(m) * kSize, kSize);
    ASSERT_TRUE(op.ok()) << op.status();
    receives.push_back(*op);
  }
  for (int m = 0; m < kMessages; ++m) {
    auto* bytes = static_cast<uint8_t*>(a.buffers[from].data()) + size_t(m) * kSize;
    std::memset(bytes, (from * 7 + to * 3 + m) & 0xff, kSize);
    std::memcpy(bytes, &m, sizeof(m));
    auto op =
        tx.Send(tx_name, b_node + "/" + rx_name, tag, a.buffers[from], size_t(m) * kSize, kSize);
    ASSERT_TRUE(op.ok()) << op.status();
    sends.push_back(*op);
  }
  for (int m = 0; m < kMessages; ++m) {
    auto sent = tx.Wait(sends[m], 10000);
    ASSERT_TRUE(sent.ok() && sent->status.ok())
        << from << "->" << to << " #" << m << ": " << (sent.ok() ? sent->status : sent.status());
    auto got = rx.Wait(receives[m], 10000);
    ASSERT_TRUE(got.ok() && got->status.ok()) << from << "->" << to << " #" << m;
    ASSERT_EQ(got->length, uint64_t{kSize});
    const auto* bytes = static_cast<const uint8_t*>(b.buffers[to].data()) + size_t(m) * kSize;
    int seq;
    std::memcpy(&seq, bytes, sizeof(seq));
    ASSERT_EQ(seq, m) << from << "->" << to << ": out of order";
    ASSERT_EQ(bytes[kSize - 1], (from * 7 + to * 3 + m) & 0xff);
  }
}

// Daemon `d`'s view of peer `name` (empty: none).
std::optional<v1::PeerInfo> PeerNamed(Cluster& cluster, size_t d, const std::string& name) {
  const v1::ListPeersResponse peers = cluster.Peers(d);
  for (const auto& p : peers.peers()) {
    if (p.name() == name) return p;
  }
  return std::nullopt;
}

// Every client of node-a sends to every client of node-b: shard k to shard k
// on the links, and across shards with a hand-off on either side. The peers
// list shows two links each way, and the frames they carried.
TEST(ShardLinksTest, EveryShardPairAcrossTwoNodes) {
  TempDir dir;
  Cluster cluster(dir, {"node-a", "node-b"}, {"engine.shards=3"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)))
      << cluster.daemons[0]->process().Log();
  Node a = Attach(cluster, 0, "a", 3), b = Attach(cluster, 1, "b", 3);
  ASSERT_EQ(a.clients.size(), 3u);
  ASSERT_EQ(b.clients.size(), 3u);
  for (int from = 0; from < 3; ++from) {
    for (int to = 0; to < 3; ++to) {
      ASSERT_NO_FATAL_FAILURE(SendAndCheck(a, from, b, to, "node-b"));
    }
  }
  for (size_t d = 0; d < 2; ++d) {
    const auto peer = PeerNamed(cluster, d, d == 0 ? "node-b" : "node-a");
    ASSERT_TRUE(peer.has_value());
    EXPECT_EQ(peer->shard_links(), 2u);
    // Shards 1 and 2 sent 200 messages to each of node-b's three clients.
    EXPECT_GE(peer->shard_frames(), uint64_t{2 * 3 * kMessages}) << d;
  }
}

// Messages from two shards of one node wait at the other, unmatched; one
// sender withdraws its own. The receiver takes the other's: each shard
// numbers its messages apart from the others', so the withdrawal names one.
TEST(ShardLinksTest, AWithdrawalTakesItsOwnShardsMessage) {
  TempDir dir;
  Cluster cluster(dir, {"node-a", "node-b"}, {"engine.shards=2"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  Node a = Attach(cluster, 0, "a", 2), b = Attach(cluster, 1, "b", 1);
  ASSERT_EQ(a.clients.size(), 2u);
  ASSERT_EQ(b.clients.size(), 1u);
  std::memset(a.buffers[0].data(), 0xa0, 64);
  std::memset(a.buffers[1].data(), 0xa1, 64);
  // Each shard's first message to node-b: shard 0's, then shard 1's.
  auto kept = a.clients[0]->Send("a0", "node-b/b0", 10, a.buffers[0], 0, 64);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(a.clients[0]->Wait(*kept, 300).status().code(), absl::StatusCode::kDeadlineExceeded);
  auto withdrawn = a.clients[1]->Send("a1", "node-b/b0", 11, a.buffers[1], 0, 64);
  ASSERT_TRUE(withdrawn.ok());
  EXPECT_EQ(a.clients[1]->Wait(*withdrawn, 300).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(a.clients[1]->Cancel(*withdrawn).ok());
  auto cancelled = a.clients[1]->Wait(*withdrawn, 10000);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->status.code(), absl::StatusCode::kCancelled) << cancelled->status;

  Client& rx = *b.clients[0];
  auto first = rx.PostRecv("b0", 10, b.buffers[0], 0, 64);
  ASSERT_TRUE(first.ok());
  auto got = rx.Wait(*first, 10000);
  ASSERT_TRUE(got.ok() && got->status.ok()) << (got.ok() ? got->status : got.status());
  EXPECT_EQ(static_cast<const uint8_t*>(b.buffers[0].data())[63], 0xa0);
  auto sent = a.clients[0]->Wait(*kept, 10000);
  ASSERT_TRUE(sent.ok());
  EXPECT_TRUE(sent->status.ok()) << sent->status;
  // The withdrawn one never lands.
  auto none = rx.PostRecv("b0", 11, b.buffers[0], 64, 64, {.timeout_ms = 300});
  ASSERT_TRUE(none.ok());
  auto nothing = rx.Wait(*none, 10000);
  ASSERT_TRUE(nothing.ok());
  EXPECT_EQ(nothing->status.code(), absl::StatusCode::kDeadlineExceeded) << nothing->status;
}

// engine.remote: shard0 on either side keeps everything on shard 0, and a
// peer with fewer shards links only those both have; messages still arrive
// in order from every shard.
TEST(ShardLinksTest, ShardZeroOnlyAndFewerShardsTakeShardZero) {
  TempDir dir;
  Cluster cluster(dir, {"node-a", "node-b"}, {"engine.shards=3"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  cluster.Start(1, {}, {"engine.shards=2"});
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto p = PeerNamed(cluster, 0, "node-b");
        return p.has_value() && p->state() == "up" && p->shard_links() == 1;
      },
      std::chrono::seconds(15)))
      << cluster.daemons[0]->process().Log();
  {
    Node a = Attach(cluster, 0, "a", 3), b = Attach(cluster, 1, "b", 2);
    ASSERT_EQ(a.clients.size(), 3u);
    ASSERT_EQ(b.clients.size(), 2u);
    for (int from = 0; from < 3; ++from)
      ASSERT_NO_FATAL_FAILURE(SendAndCheck(a, from, b, 1, "node-b"));
  }
  cluster.Start(1, {}, {"engine.remote=shard0"});
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto p = PeerNamed(cluster, 0, "node-b");
        return p.has_value() && p->state() == "up";
      },
      std::chrono::seconds(15)));
  const auto before = PeerNamed(cluster, 1, "node-a");
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->shard_links(), 0u);
  Node a = Attach(cluster, 0, "a", 3), b = Attach(cluster, 1, "b", 3);
  ASSERT_EQ(b.clients.size(), 3u);
  for (int from = 0; from < 3; ++from)
    ASSERT_NO_FATAL_FAILURE(SendAndCheck(a, from, b, 2, "node-b"));
  const auto after = PeerNamed(cluster, 1, "node-a");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->shard_frames(), 0u);  // node-b's shards carried nothing of their own
}

// Sends waiting on a shard link fail UNAVAILABLE when the peer dies, at once
// once it is down, and the links come back with the peer.
TEST(ShardLinksTest, APeerThatDiesFailsTheLinksSendsAndComesBack) {
  TempDir dir;
  Cluster cluster(dir, {"node-a", "node-b"}, {"engine.shards=2"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  Node a = Attach(cluster, 0, "a", 2);
  ASSERT_EQ(a.clients.size(), 2u);
  Client& tx = *a.clients[1];  // shard 1
  {
    Node b = Attach(cluster, 1, "b", 2);
    ASSERT_EQ(b.clients.size(), 2u);
    ASSERT_NO_FATAL_FAILURE(SendAndCheck(a, 1, b, 1, "node-b"));
    // Nobody receives these: they wait at node-b.
    auto waiting = tx.Send("a1", "node-b/b1", 9, a.buffers[1], 0, 64);
    ASSERT_TRUE(waiting.ok());
    EXPECT_EQ(tx.Wait(*waiting, 200).status().code(), absl::StatusCode::kDeadlineExceeded);
    cluster.daemons[1]->process().Signal(SIGKILL);
    cluster.daemons[1]->process().Wait(std::chrono::seconds(5));
    auto failed = tx.Wait(*waiting, 10000);
    ASSERT_TRUE(failed.ok()) << failed.status();
    EXPECT_EQ(failed->status.code(), absl::StatusCode::kUnavailable) << failed->status;
  }
  ASSERT_TRUE(
      WaitFor([&] { return cluster.StateOf(0, "node-b") != "up"; }, std::chrono::seconds(10)));
  auto later = tx.Send("a1", "node-b/b1", 9, a.buffers[1], 0, 64);
  ASSERT_TRUE(later.ok());
  auto refused = tx.Wait(*later, 10000);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status.code(), absl::StatusCode::kUnavailable) << refused->status;

  cluster.Start(1);
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto p = PeerNamed(cluster, 0, "node-b");
        return p.has_value() && p->state() == "up" && p->shard_links() == 1;
      },
      std::chrono::seconds(15)));
  Node b = Attach(cluster, 1, "b", 2);
  ASSERT_EQ(b.clients.size(), 2u);
  ASSERT_NO_FATAL_FAILURE(SendAndCheck(a, 1, b, 1, "node-b"));
  EXPECT_EQ(cluster.daemons[0]->Ctl({"health"}).exit_code, 0);
}

}  // namespace
}  // namespace axon
