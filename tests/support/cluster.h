// Test support: a cluster of real daemons on loopback, each with its own
// socket, port and node name, all listed as each other's static peers.
#pragma once

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "axon/v1/admin.pb.h"
#include "tests/support/axond.h"

namespace axon::testing {

// Peer `peer`'s state as `daemon` sees it ("up", "down", ...; "absent").
inline std::string PeerState(const Axond& daemon, const std::string& peer) {
  const auto listed = daemon.CtlJson<v1::ListPeersResponse>({"peers"});
  for (const auto& p : listed.peers()) {
    if (p.name() == peer) return p.state();
  }
  return "absent";
}

// Ports from a range picked per test process, so parallel runs do not collide,
// and below Linux's ephemeral range (32768 and up) where UCX's own TCP
// connections take their local ports.
inline int BasePort() { return 20000 + (::getpid() % 1200) * 10; }

struct Cluster {
  explicit Cluster(const TempDir& dir, std::vector<std::string> names = {"n1", "n2", "n3"},
                   std::vector<std::string> extra = {})
      : dir(dir), names(std::move(names)), extra(std::move(extra)) {
    // Another process on this machine may hold a port of the range (a
    // parallel test whose pid shares ours modulo 1200): then try another.
    std::mt19937 random(static_cast<unsigned>(::getpid()));
    for (int attempt = 0; attempt < 5; ++attempt) {
      size_t failed = this->names.size();
      for (size_t i = 0; i < this->names.size() && failed == this->names.size(); ++i) {
        if (!Launch(i)) failed = i;
      }
      if (failed == this->names.size()) return;
      const std::string log = daemons[failed]->process().Log();
      if (log.find("Address already in use") == std::string::npos || attempt == 4) {
        ADD_FAILURE() << "axond " << this->names[failed] << " did not start:\n" << log;
        return;
      }
      daemons.clear();
      base = 20000 + static_cast<int>(random() % 1200) * 10;
    }
  }

  std::string Address(size_t i) const { return "127.0.0.1:" + std::to_string(base + i); }

  std::string StaticPeers() const {
    std::string list = "peers.static=[";
    for (size_t i = 0; i < names.size(); ++i) {
      list += (i ? ", " : "") + std::string("{name: ") + names[i] + ", address: \"" + Address(i) +
              "\"}";
    }
    return list + "]";
  }

  // (Re)starts daemon i and expects it to come up.
  void Start(size_t i, std::map<std::string, std::string> env = {},
             std::vector<std::string> sets = {}) {
    EXPECT_TRUE(Launch(i, std::move(env), std::move(sets))) << daemons[i]->process().Log();
  }

  // (Re)starts daemon i; whether it came up.
  bool Launch(size_t i, std::map<std::string, std::string> env = {},
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
    return daemons[i]->WaitReady() && daemons[i]->process().running();
  }

  v1::ListPeersResponse Peers(size_t i) {
    return daemons[i]->CtlJson<v1::ListPeersResponse>({"peers"});
  }

  std::string StateOf(size_t i, const std::string& peer) { return PeerState(*daemons[i], peer); }

  bool AllUp() {
    for (size_t i = 0; i < names.size(); ++i) {
      for (size_t j = 0; j < names.size(); ++j) {
        if (i != j && StateOf(i, names[j]) != "up") return false;
      }
    }
    return true;
  }

  const TempDir& dir;
  int base = BasePort();  // the first daemon's port; the others follow
  std::vector<std::string> names;
  std::vector<std::string> extra;
  std::vector<std::unique_ptr<Axond>> daemons;
};

}  // namespace axon::testing
