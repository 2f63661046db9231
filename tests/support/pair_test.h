// Test support: a sending and a receiving client, each attached to its own
// daemon (remote: node-a and node-b, peered over UCX) or both to one
// (local). PairTest is parameterised on remote; fixtures with other
// parameters derive from Pair and call StartPair.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/support/cluster.h"

namespace axon::testing {

// Session `id` as `axonctl sessions` shows it (empty when not found).
inline v1::SessionInfo SessionOf(Axond& axond, uint64_t id) {
  v1::ListSessionsResponse sessions;
  (void)google::protobuf::util::JsonStringToMessage(axond.Ctl({"--json", "sessions"}).out,
                                                    &sessions);
  for (const auto& s : sessions.sessions()) {
    if (s.session_id() == id) return s;
  }
  return {};
}

// FNV-1a over the bytes.
inline uint64_t Checksum(const void* data, size_t size) {
  uint64_t h = 1469598103934665603ull;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// The daemons' eager limit in these tests.
inline constexpr size_t kTestEagerLimit = 16384;

class Pair {
 protected:
  bool remote() const { return remote_; }

  // Starts the daemons (two peered ones with `sets` added, or one) and the
  // two clients, bound to endpoints "a" (sender) and "b" (receiver).
  // `env_a`: environment for node-a (remote).
  void StartPair(bool remote, std::vector<std::string> sets = {},
                 std::map<std::string, std::string> env_a = {}) {
    remote_ = remote;
    if (remote_) {
      sets.push_back("peers.eager_limit=" + std::to_string(kTestEagerLimit));
      cluster_ = std::make_unique<Cluster>(dir_, std::vector<std::string>{"node-a", "node-b"},
                                           std::move(sets));
      if (!env_a.empty()) cluster_->Start(0, std::move(env_a));
      ASSERT_TRUE(WaitFor([&] { return cluster_->AllUp(); }, std::chrono::seconds(15)))
          << cluster_->daemons[0]->process().Log();
    } else {
      local_ = std::make_unique<Axond>(dir_);
      ASSERT_TRUE(local_->WaitReady()) << local_->process().Log();
    }
    // With engine shards (the Shards3.* reruns), a first client on each
    // daemon takes shard 0, so that the pair's sessions are served by other
    // shards and their messages hop to and from shard 0's remote path.
    if (std::getenv("AXON_TEST_ENGINE_SHARDS") != nullptr) {
      std::vector<Axond*> daemons = {&sending_daemon()};
      if (remote_) daemons.push_back(&receiving_daemon());
      for (Axond* d : daemons) {
        auto filler = Client::Connect({.socket_path = d->socket(), .client_name = "filler"});
        ASSERT_TRUE(filler.ok()) << filler.status();
        fillers_.push_back(*std::move(filler));
      }
    }
    auto a = Client::Connect({.socket_path = sending_daemon().socket(), .client_name = "sender"});
    auto b =
        Client::Connect({.socket_path = receiving_daemon().socket(), .client_name = "receiver"});
    ASSERT_TRUE(a.ok() && b.ok());
    sender_ = *std::move(a);
    receiver_ = *std::move(b);
    ASSERT_TRUE(sender_->BindEndpoint("a").ok());
    ASSERT_TRUE(receiver_->BindEndpoint("b").ok());
  }

  Axond& sending_daemon() { return remote() ? *cluster_->daemons[0] : *local_; }
  Axond& receiving_daemon() { return remote() ? *cluster_->daemons[1] : *local_; }
  // The address of endpoint `name` on the receiver's node.
  std::string At(const std::string& name) const {
    return (remote() ? "node-b/" : "node-a/") + name;
  }

  bool remote_ = false;
  TempDir dir_;
  std::unique_ptr<Axond> local_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<Client> sender_, receiver_;
  std::vector<std::unique_ptr<Client>> fillers_;  // shard 0's sessions (see StartPair)
};

class PairTest : public ::testing::TestWithParam<bool>, protected Pair {
 protected:
  void SetUp() override { StartPair(GetParam()); }
};

inline std::string PathName(const ::testing::TestParamInfo<bool>& p) {
  return p.param ? "Remote" : "Local";
}

}  // namespace axon::testing
