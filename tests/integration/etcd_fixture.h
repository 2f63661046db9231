// EtcdTest: the fixture of the membership tests (etcd_test.cc,
// etcd_cluster_test.cc, etcd_auth_test.cc): a real etcd (Debian's
// etcd-server) started on loopback ports of the test's own, and axond
// processes that find each other through it.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "axon/v1/admin.pb.h"
#include "tests/support/cluster.h"
#include "tests/support/etcd.h"

namespace axon::testing {

inline constexpr int kLeaseTtlMs = 2000;

class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (EtcdPath().empty()) GTEST_SKIP() << "no etcd (Debian's etcd-server)";
    etcd_ = std::make_unique<Etcd>(dir_, etcd_port_, etcd_port_ + 1, etcd_metrics_port_);
    if (!tls_cert_.empty()) etcd_->UseTls(tls_cert_, tls_key_);
    if (!etcd_first_) return;
    etcd_->Start();
    ASSERT_TRUE(etcd_->running()) << etcd_->Log();
  }

  std::string Address(size_t i) const { return "127.0.0.1:" + std::to_string(base_ + i); }

  // Starts daemon `name` on port base+i, discovering the others through etcd.
  void Launch(size_t i, const std::string& name, std::vector<std::string> extra = {}) {
    if (daemons_.size() <= i) daemons_.resize(i + 1);
    daemons_[i].reset();
    std::vector<std::string> sets = {
        "peers.listen=" + Address(i),
        "peers.discovery=etcd",
        "etcd.endpoints=[\"127.0.0.1:" + std::to_string(etcd_port_) + "\"]",
        "etcd.prefix=/axon-test/",
        "etcd.lease_ttl_ms=" + std::to_string(kLeaseTtlMs),
        "etcd.retry_min_ms=50",
        "etcd.retry_max_ms=500",
        "peers.keepalive_ms=300",
        "peers.dead_after_ms=1500",
        "peers.reconnect_max_ms=500"};
    sets.insert(sets.end(), extra.begin(), extra.end());
    daemons_[i] =
        std::make_unique<Axond>(dir_, AxondOptions{.node_name = name,
                                                   .instance = name + "-" + std::to_string(i),
                                                   .sets = std::move(sets)});
    ASSERT_TRUE(daemons_[i]->WaitReady()) << daemons_[i]->process().Log();
  }

  v1::ListNodesResponse Nodes(size_t i) const {
    return daemons_[i]->CtlJson<v1::ListNodesResponse>({"nodes"});
  }
  bool Lists(size_t i, const std::string& name) const {
    const auto nodes = Nodes(i);
    for (const auto& n : nodes.nodes()) {
      if (n.name() == name) return true;
    }
    return false;
  }
  uint64_t IncarnationOf(size_t i, const std::string& name) const {
    const auto nodes = Nodes(i);
    for (const auto& n : nodes.nodes()) {
      if (n.name() == name) return n.incarnation();
    }
    return 0;
  }
  std::string StateOf(size_t i, const std::string& peer) const {
    return PeerState(*daemons_[i], peer);
  }
  uint64_t ReconnectsOf(size_t i, const std::string& peer) const {
    const auto peers = daemons_[i]->CtlJson<v1::ListPeersResponse>({"peers"});
    for (const auto& p : peers.peers()) {
      if (p.name() == peer) return p.reconnects();
    }
    return ~uint64_t{0};
  }
  // The membership check of `axonctl health`: "ok" or "DEGRADED" (or "FAIL").
  std::string MembershipHealth(size_t i) const {
    const auto health = daemons_[i]->CtlJson<v1::HealthResponse>({"health"});
    for (const auto& c : health.checks()) {
      if (c.name() == "membership") return !c.ok() ? "FAIL" : c.degraded() ? "DEGRADED" : "ok";
    }
    return "absent";
  }
  bool BothUp() const { return StateOf(0, "n2") == "up" && StateOf(1, "n1") == "up"; }
  bool BothListed() const { return Lists(0, "n2") && Lists(1, "n1"); }
  // `axonctl ping`: a use of the connection, which opens it on first use.
  bool Ping(size_t i, const std::string& node) const {
    return daemons_[i]->Ctl({"ping", node, "--count", "1"}).exit_code == 0;
  }
  // Both find each other in etcd, then n1's ping connects them.
  void Join() {
    ASSERT_NO_FATAL_FAILURE(Launch(0, "n1"));
    ASSERT_NO_FATAL_FAILURE(Launch(1, "n2"));
    ASSERT_TRUE(WaitFor([&] { return BothListed(); }, std::chrono::seconds(15)))
        << daemons_[0]->process().Log();
    ASSERT_TRUE(Ping(0, "n2")) << daemons_[0]->process().Log();
    ASSERT_TRUE(WaitFor([&] { return BothUp(); }, std::chrono::seconds(5)));
  }

  bool etcd_first_ = true;  // etcd started before the test runs
  TempDir dir_;
  int base_ = BasePort();      // daemon i listens on base_ + i
  int etcd_port_ = base_ + 8;  // and its peer port the next
  int etcd_metrics_port_ = base_ + 7;
  std::string tls_cert_, tls_key_;  // etcd speaks TLS with these
  std::unique_ptr<Etcd> etcd_;
  std::vector<std::unique_ptr<Axond>> daemons_;
};

}  // namespace axon::testing
