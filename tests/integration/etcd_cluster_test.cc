// Sixteen daemons finding each other through one etcd: each connects only
// to the peers its clients talk to.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>

#include "axon/client.h"
#include "tests/integration/etcd_fixture.h"

namespace axon::testing {
namespace {

using namespace std::chrono_literals;

// The lines of a daemon's log that say something went wrong.
std::string Warnings(const std::string& log) {
  std::istringstream in(log);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    if (line.find(" warning: ") != std::string::npos ||
        line.find(" error: ") != std::string::npos) {
      out += line + "\n";
    }
  }
  return out;
}

// Sixteen daemons: a port range of their own, below the other tests' (and
// below the ephemeral ports UCX's TCP connections take).
class EtcdClusterTest : public EtcdTest {
 protected:
  static constexpr size_t kNodes = 16;
  EtcdClusterTest() {
    base_ = 14000 + static_cast<int>(::getpid() % 290) * 20;
    etcd_port_ = base_ + kNodes;
    etcd_metrics_port_ = base_ + kNodes + 2;
  }
  static std::string Name(size_t i) { return "m" + std::to_string(100 + i).substr(1); }
  // How many peers daemon i is connected to.
  int Connected(size_t i) const {
    int up = 0;
    const auto peers = daemons_[i]->CtlJson<v1::ListPeersResponse>({"peers"});
    for (const auto& p : peers.peers()) up += p.state() == "up" ? 1 : 0;
    return up;
  }
};

TEST_F(EtcdClusterTest, SixteenDaemonsConnectOnlyWhereTheyTalk) {
  // Liveness is not what this tests: sixteen daemons under a sanitizer on a
  // small machine may answer keepalives late, so they get longer.
  for (size_t i = 0; i < kNodes; ++i) {
    ASSERT_NO_FATAL_FAILURE(
        Launch(i, Name(i), {"peers.keepalive_ms=1000", "peers.dead_after_ms=10000"}));
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        for (size_t i = 0; i < kNodes; ++i) {
          if (Nodes(i).nodes_size() != static_cast<int>(kNodes - 1)) return false;
        }
        return true;
      },
      60s));
  for (size_t i = 0; i < kNodes; ++i) EXPECT_EQ(Connected(i), 0) << Name(i);

  // One client per daemon, endpoint "e"; message tag = sender's index.
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<HostBuffer> in, out;
  for (size_t i = 0; i < kNodes; ++i) {
    auto c = Client::Connect({.socket_path = daemons_[i]->socket()});
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE((*c)->BindEndpoint("e").ok());
    auto a = (*c)->AllocateHost(kNodes * 64);
    auto b = (*c)->AllocateHost(64);
    ASSERT_TRUE(a.ok() && b.ok());
    std::memset(b->data(), static_cast<int>(i), 64);
    clients.push_back(*std::move(c));
    in.push_back(*std::move(a));
    out.push_back(*std::move(b));
  }
  // Sends from `from` to `to`, each received and checked.
  auto exchange = [&](const std::vector<std::pair<size_t, size_t>>& pairs) {
    std::vector<std::pair<size_t, Operation>> recvs, sends;
    for (auto [from, to] : pairs) {
      auto r = clients[to]->PostRecv("e", from, in[to], from * 64, 64);
      ASSERT_TRUE(r.ok()) << r.status();
      recvs.emplace_back(to, *r);
    }
    for (auto [from, to] : pairs) {
      auto s = clients[from]->Send("e", Name(to) + "/e", from, out[from], 0, 64);
      ASSERT_TRUE(s.ok()) << s.status();
      sends.emplace_back(from, *s);
    }
    for (auto& [i, op] : sends) {
      auto done = clients[i]->Wait(op, 30000);
      ASSERT_TRUE(done.ok()) << done.status();
      EXPECT_TRUE(done->status.ok()) << Name(i) << ": " << done->status;
    }
    for (auto& [i, op] : recvs) {
      auto done = clients[i]->Wait(op, 30000);
      ASSERT_TRUE(done.ok()) << done.status();
      EXPECT_TRUE(done->status.ok()) << Name(i) << ": " << done->status;
    }
    for (auto [from, to] : pairs) {
      EXPECT_EQ(size_t{static_cast<const uint8_t*>(in[to].data())[from * 64 + 63]}, from);
    }
    // A daemon that died says why (its log goes with the test's directory).
    if (HasFailure()) {
      for (size_t i = 0; i < kNodes; ++i) {
        if (!daemons_[i]->process().running()) {
          ADD_FAILURE() << Name(i) << " exited:\n" << daemons_[i]->process().Log();
        } else {
          std::cerr << Name(i) << " warned:\n" << Warnings(daemons_[i]->process().Log());
        }
      }
    }
  };

  // A ring: each daemon talks to the next only, and is connected to its two
  // neighbours, no more.
  std::vector<std::pair<size_t, size_t>> ring;
  for (size_t i = 0; i < kNodes; ++i) ring.emplace_back(i, (i + 1) % kNodes);
  ASSERT_NO_FATAL_FAILURE(exchange(ring));
  for (size_t i = 0; i < kNodes; ++i) EXPECT_EQ(Connected(i), 2) << Name(i);

  // Then every pair, both ways.
  std::vector<std::pair<size_t, size_t>> all;
  for (size_t i = 0; i < kNodes; ++i) {
    for (size_t j = 0; j < kNodes; ++j) {
      if (i != j) all.emplace_back(i, j);
    }
  }
  ASSERT_NO_FATAL_FAILURE(exchange(all));
  for (size_t i = 0; i < kNodes; ++i) {
    EXPECT_EQ(Connected(i), static_cast<int>(kNodes) - 1) << Name(i);
  }
  clients.clear();
  in.clear();
  out.clear();
}

}  // namespace
}  // namespace axon::testing
