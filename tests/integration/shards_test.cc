// Engine shards (engine.shards): each shard is a thread of its own serving a
// share of the sessions, and messages between sessions of different shards
// keep every guarantee of one: order per pair, nothing lost, cancel and
// deadlines, and nothing left behind by a session that closed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "tests/support/axond.h"

namespace axon {
namespace {

using testing::Axond;
using testing::TempDir;
using testing::ThreadsNamed;

constexpr int kShards = 3;

class ShardsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    axond_ = std::make_unique<Axond>(
        dir_, testing::AxondOptions{.sets = {"engine.shards=" + std::to_string(kShards)}});
    ASSERT_TRUE(axond_->WaitReady()) << axond_->process().Log();
  }
  std::unique_ptr<Client> Attach(const std::string& endpoint) {
    auto c = Client::Connect({.socket_path = axond_->socket(), .client_name = endpoint});
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return nullptr;
    EXPECT_TRUE((*c)->BindEndpoint(endpoint).ok());
    return *std::move(c);
  }

  TempDir dir_;
  std::unique_ptr<Axond> axond_;
};

// Six clients in a ring, each sending to the next: their sessions fall on
// shards 0, 1, 2, 0, 1, 2, so every message crosses from one shard to
// another. Each pair's messages arrive whole and in order, and the
// per-session counts that `axonctl sessions` gathers from every shard add up.
TEST_F(ShardsTest, ARingOfClientsAcrossTheShards) {
  EXPECT_EQ(ThreadsNamed(axond_->process().pid(), "axond-ucx").size(), size_t{kShards});
  constexpr int kClients = 6, kMessages = 300, kSize = 256;
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<HostBuffer> out, in;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(Attach("ring" + std::to_string(i)));
    ASSERT_NE(clients.back(), nullptr);
    auto o = clients.back()->AllocateHost(size_t{kMessages} * kSize);
    auto r = clients.back()->AllocateHost(size_t{kMessages} * kSize);
    ASSERT_TRUE(o.ok() && r.ok());
    out.push_back(*std::move(o));
    in.push_back(*std::move(r));
  }
  // Every receive first, then every send: matched receive by receive.
  std::vector<std::vector<Operation>> receives(kClients), sends(kClients);
  for (int i = 0; i < kClients; ++i) {
    for (int m = 0; m < kMessages; ++m) {
      auto op =
          clients[i]->PostRecv("ring" + std::to_string(i), 5, in[i], size_t(m) * kSize, kSize);
      ASSERT_TRUE(op.ok());
      receives[i].push_back(*op);
    }
  }
  for (int i = 0; i < kClients; ++i) {
    const std::string to = "ring" + std::to_string((i + 1) % kClients);
    for (int m = 0; m < kMessages; ++m) {
      auto* bytes = static_cast<uint8_t*>(out[i].data()) + size_t(m) * kSize;
      std::memset(bytes, (i * 31 + m) & 0xff, kSize);
      std::memcpy(bytes, &m, sizeof(m));
      auto op =
          clients[i]->Send("ring" + std::to_string(i), to, 5, out[i], size_t(m) * kSize, kSize);
      ASSERT_TRUE(op.ok());
      sends[i].push_back(*op);
    }
  }
  for (int i = 0; i < kClients; ++i) {
    const int from = (i + kClients - 1) % kClients;
    for (int m = 0; m < kMessages; ++m) {
      auto sent = clients[i]->Wait(sends[i][m], 10000);
      ASSERT_TRUE(sent.ok() && sent->status.ok()) << i << " " << m;
      auto got = clients[i]->Wait(receives[i][m], 10000);
      ASSERT_TRUE(got.ok() && got->status.ok()) << i << " " << m;
      ASSERT_EQ(got->length, uint64_t{kSize});
      const auto* bytes = static_cast<const uint8_t*>(in[i].data()) + size_t(m) * kSize;
      int seq;
      std::memcpy(&seq, bytes, sizeof(seq));
      ASSERT_EQ(seq, m) << "client " << i << ": messages from " << from << " out of order";
      EXPECT_EQ(bytes[kSize - 1], (from * 31 + m) & 0xff);
    }
  }
  v1::ListSessionsResponse listed = axond_->CtlJson<v1::ListSessionsResponse>({"sessions"});
  ASSERT_EQ(listed.sessions_size(), kClients);
  for (const auto& s : listed.sessions()) {
    EXPECT_EQ(s.messages_sent(), uint64_t{kMessages}) << s.client_name();
    EXPECT_EQ(s.messages_received(), uint64_t{kMessages}) << s.client_name();
    EXPECT_EQ(s.in_flight(), 0u) << s.client_name();
  }
}

// Clients naming one placement get one shard (and the least-loaded shard
// for a new placement), which `axonctl sessions` shows; messages between a
// placed pair still arrive; a placement that is not printable is refused.
TEST_F(ShardsTest, ClientsNamingOnePlacementShareAShard) {
  auto connect = [&](const std::string& name, const std::string& placement) {
    auto c = Client::Connect(
        {.socket_path = axond_->socket(), .client_name = name, .placement = placement});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  };
  auto loose = connect("loose", "");
  auto a1 = connect("a1", "pair-a"), b1 = connect("b1", "pair-b");
  auto a2 = connect("a2", "pair-a"), b2 = connect("b2", "pair-b");
  ASSERT_TRUE(loose && a1 && a2 && b1 && b2);
  std::map<std::string, v1::SessionInfo> by_name;
  const auto listed = axond_->CtlJson<v1::ListSessionsResponse>({"sessions"});
  for (const auto& s : listed.sessions()) {
    EXPECT_EQ(s.shard(), s.session_id() % kShards) << s.client_name();
    by_name[s.client_name()] = s;
  }
  ASSERT_EQ(by_name.size(), 5u);
  EXPECT_EQ(by_name["a1"].shard(), by_name["a2"].shard());
  EXPECT_EQ(by_name["b1"].shard(), by_name["b2"].shard());
  EXPECT_NE(by_name["a1"].shard(), by_name["b1"].shard());
  EXPECT_NE(by_name["a1"].shard(), by_name["loose"].shard());
  EXPECT_NE(by_name["b1"].shard(), by_name["loose"].shard());
  EXPECT_EQ(by_name["a1"].placement(), "pair-a");
  EXPECT_EQ(by_name["loose"].placement(), "");

  ASSERT_TRUE(a1->BindEndpoint("a1").ok() && a2->BindEndpoint("a2").ok());
  auto out = a1->AllocateHost(4096);
  auto in = a2->AllocateHost(4096);
  ASSERT_TRUE(out.ok() && in.ok());
  std::memset(out->data(), 7, 4096);
  auto recv = a2->PostRecv("a2", 1, *in, 0, 4096);
  auto send = a1->Send("a1", "a2", 1, *out, 0, 4096);
  ASSERT_TRUE(recv.ok() && send.ok());
  auto got = a2->Wait(*recv, 10000);
  ASSERT_TRUE(got.ok() && got->status.ok());
  EXPECT_EQ(static_cast<const uint8_t*>(in->data())[4095], 7);

  auto bad = Client::Connect({.socket_path = axond_->socket(), .placement = "tab\there"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("placement"));
}

// Sends that wait on another shard for a receive go with their session: a
// receive posted after the sender closed gets nothing stale, and the next
// sender's message is the one that lands.
TEST_F(ShardsTest, SendsWaitingOnAnotherShardGoWithTheirSession) {
  auto receiver = Attach("rx");  // shard 0
  auto sender = Attach("tx");    // shard 1
  ASSERT_TRUE(receiver && sender);
  auto src = sender->AllocateHost(4096);
  auto dst = receiver->AllocateHost(4096);
  ASSERT_TRUE(src.ok() && dst.ok());
  std::memset(src->data(), 0x11, 4096);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sender->Send("tx", "rx", 9, *src, 0, 64).ok());
  v1::ListSessionsResponse listed;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        listed = axond_->CtlJson<v1::ListSessionsResponse>({"sessions"});
        for (const auto& s : listed.sessions()) {
          if (s.client_name() == "tx") return s.in_flight() == 3;
        }
        return false;
      },
      std::chrono::seconds(5)));
  sender.reset();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return axond_->CtlJson<v1::ListSessionsResponse>({"sessions"}).sessions_size() == 1; },
      std::chrono::seconds(5)));
  auto stale = receiver->PostRecv("rx", 9, *dst, 0, 4096, {.timeout_ms = 300});
  ASSERT_TRUE(stale.ok());
  auto nothing = receiver->Wait(*stale, 5000);
  ASSERT_TRUE(nothing.ok()) << nothing.status() << "\n" << axond_->process().Log();
  EXPECT_EQ(nothing->status.code(), absl::StatusCode::kDeadlineExceeded);

  auto next = Attach("tx2");  // shard 1 again, the one tx left
  ASSERT_NE(next, nullptr);
  auto src2 = next->AllocateHost(4096);
  ASSERT_TRUE(src2.ok());
  std::memset(src2->data(), 0x22, 4096);
  auto recv = receiver->PostRecv("rx", 9, *dst, 0, 4096);
  auto send = next->Send("tx2", "rx", 9, *src2, 0, 100);
  ASSERT_TRUE(recv.ok() && send.ok());
  auto got = receiver->Wait(*recv, 5000);
  ASSERT_TRUE(got.ok() && got->status.ok());
  EXPECT_EQ(got->length, 100u);
  EXPECT_EQ(static_cast<const uint8_t*>(dst->data())[0], 0x22);
  EXPECT_TRUE(next->Wait(*send, 5000)->status.ok());
}

// A cancel finds a send waiting on another shard, and says NOT_FOUND once it
// is gone; a deadline does the same on its own.
TEST_F(ShardsTest, CancelAndDeadlinesReachAnotherShard) {
  auto receiver = Attach("rx");
  auto sender = Attach("tx");
  ASSERT_TRUE(receiver && sender);
  auto src = sender->AllocateHost(4096);
  ASSERT_TRUE(src.ok());
  auto waiting = sender->Send("tx", "rx", 1, *src, 0, 64);
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(sender->Wait(*waiting, 200).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(sender->Cancel(*waiting).ok());
  auto cancelled = sender->Wait(*waiting, 5000);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(sender->Cancel(*waiting).code(), absl::StatusCode::kNotFound);
  auto expiring = sender->Send("tx", "rx", 1, *src, 0, 64, {.timeout_ms = 200});
  ASSERT_TRUE(expiring.ok());
  auto expired = sender->Wait(*expiring, 5000);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(expired->status.code(), absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace axon
