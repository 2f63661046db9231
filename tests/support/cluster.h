// Test support: a cluster of real daemons on loopback, each with its own
// socket, port and node name, all listed as each other's static peers.
#pragma once

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "axon/v1/admin.pb.h"
#include "tests/support/axond.h"

namespace axon::testing {

// Ports from a range picked per test process, so parallel runs do not collide,
// and below Linux's ephemeral range (32768 and up) where UCX's own TCP
// connections take their local ports.
inline int BasePort() { return 20000 + (::getpid() % 1200) * 10; }

struct Cluster {
  explicit Cluster(const TempDir& dir, std::vector<std::string> names = {"n1", "n2", "n3"},
                   std::vector<std::string> extra = {})
      : dir(dir), names(std::move(names)), extra(std::move(extra)) {
    for (size_t i = 0; i < this->names.size(); ++i) Start(i);
  }

  std::string Address(size_t i) const { return "127.0.0.1:" + std::to_string(BasePort() + i); }

  std::string StaticPeers() const {
    std::string list = "peers.static=[";
    for (size_t i = 0; i < names.size(); ++i) {
      list += (i ? ", " : "") + std::string("{name: ") + names[i] + ", address: \"" + Address(i) +
              "\"}";
    }
    return list + "]";
  }

  void Start(size_t i, std::map<std::string, std::string> env = {},
             std::vector<std::string> sets = {}) {
    std::vector<std::string> all = {"peers.listen=" + Address(i), StaticPeers(),
                                    "peers.keepalive_ms=300", "peers.dead_after_ms=1500",
                                    "peers.reconnect_max_ms=1000"};
    all.insert(all.end(), extra.begin(), extra.end());
    all.insert(all.end(), sets.begin(), sets.end());
    if (daemons.size() <= i) daemons.resize(i + 1);
    daemons[i].reset();
    daemons[i] = std::make_unique<Axond>(
        dir, AxondOptions{.node_name = names[i], .sets = all, .env = std::move(env)});
    EXPECT_TRUE(daemons[i]->WaitReady()) << daemons[i]->process().Log();
  }

  v1::ListPeersResponse Peers(size_t i) {
    v1::ListPeersResponse peers;
    auto r = daemons[i]->Ctl({"--json", "peers"});
    (void)google::protobuf::util::JsonStringToMessage(r.out, &peers);
    return peers;
  }

  std::string StateOf(size_t i, const std::string& peer) {
    const v1::ListPeersResponse peers = Peers(i);
    for (const auto& p : peers.peers()) {
      if (p.name() == peer) return p.state();
    }
    return "absent";
  }

  bool AllUp() {
    for (size_t i = 0; i < names.size(); ++i) {
      for (size_t j = 0; j < names.size(); ++j) {
        if (i != j && StateOf(i, names[j]) != "up") return false;
      }
    }
    return true;
  }

  const TempDir& dir;
  std::vector<std::string> names;
  std::vector<std::string> extra;
  std::vector<std::unique_ptr<Axond>> daemons;
};

}  // namespace axon::testing
