// MemberTable: what full reads and watch events of the etcd prefix change.
#include "daemon/membership/member_table.h"

#include <gtest/gtest.h>

namespace axon::daemon {
namespace {

using Kind = MemberTable::Change::Kind;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

Member Node(const std::string& name, uint64_t incarnation, int port = 7000) {
  return Member{.name = name,
                .address = "10.0.0.1:" + std::to_string(port),
                .wire_version = 5,
                .incarnation = incarnation,
                .started = kT0,
                .transports = {"tcp/eth0"},
                .version = "0.1.0"};
}

std::pair<std::string, std::string> Kv(const Member& m) {
  return {MemberTable::KeyOf("/p/", m.name), EncodeMember(m)};
}

TEST(MemberRecord, RoundTripsThroughJson) {
  const Member m = Node("gpu-17", 0xfeedbeefcafe);
  auto back = DecodeMember(EncodeMember(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->SameAs(m));
  EXPECT_EQ(back->wire_version, 5u);
  EXPECT_EQ(back->started, kT0);
  EXPECT_EQ(back->transports, m.transports);
  EXPECT_EQ(back->version, "0.1.0");
}

TEST(MemberRecord, RefusesWhatIsNotARecord) {
  EXPECT_FALSE(DecodeMember("not json").ok());
  EXPECT_FALSE(DecodeMember("{}").ok());  // no name
  EXPECT_FALSE(DecodeMember(R"({"name":"a","address":"nowhere","incarnation":"1"})").ok());
  EXPECT_FALSE(DecodeMember(R"({"name":"a","address":"10.0.0.1:1"})").ok());  // no incarnation
  // Fields from a later version are ignored.
  EXPECT_TRUE(
      DecodeMember(R"({"name":"a","address":"10.0.0.1:1","incarnation":"7","shiny":true})").ok());
}

TEST(MemberTable, AFullReadReportsNewNodesAndThoseGone) {
  MemberTable table("/p/", "self");
  auto changes = table.Replace({Kv(Node("a", 1)), Kv(Node("b", 2)), Kv(Node("self", 3))}, kT0);
  ASSERT_EQ(changes.size(), 2u);  // not this node itself
  EXPECT_EQ(changes[0].kind, Kind::kJoined);
  EXPECT_EQ(changes[0].member.name, "a");
  EXPECT_EQ(changes[1].member.name, "b");
  // Read again (after etcd came back): b left meanwhile, c came.
  changes = table.Replace({Kv(Node("a", 1)), Kv(Node("c", 4))}, kT0 + absl::Seconds(5));
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].kind, Kind::kJoined);
  EXPECT_EQ(changes[0].member.name, "c");
  EXPECT_EQ(changes[1].kind, Kind::kLeft);
  EXPECT_EQ(changes[1].member.name, "b");
  const auto snapshot = table.Snapshot();
  ASSERT_EQ(snapshot.size(), 2u);
  EXPECT_EQ(snapshot[0].joined, kT0);  // a: first seen at the first read
  EXPECT_EQ(snapshot[1].joined, kT0 + absl::Seconds(5));
}

TEST(MemberTable, ARewrittenRecordOfTheSameDaemonIsNoChange) {
  MemberTable table("/p/", "self");
  auto [key, value] = Kv(Node("a", 1));
  EXPECT_EQ(table.Put(key, value, kT0).size(), 1u);
  EXPECT_TRUE(table.Put(key, value, kT0 + absl::Seconds(1)).empty());  // re-registered
  EXPECT_EQ(table.Snapshot()[0].joined, kT0);
}

TEST(MemberTable, ANewIncarnationOrAddressJoinsAgain) {
  MemberTable table("/p/", "self");
  auto [key, value] = Kv(Node("a", 1));
  table.Put(key, value, kT0);
  auto changes = table.Put(key, EncodeMember(Node("a", 2)), kT0 + absl::Seconds(1));
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].kind, Kind::kJoined);
  EXPECT_EQ(changes[0].member.incarnation, 2u);
  changes = table.Put(key, EncodeMember(Node("a", 2, 7001)), kT0 + absl::Seconds(2));
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].member.address, "10.0.0.1:7001");
}

TEST(MemberTable, DeletesOfKnownNodesLeaveOthersAreNothing) {
  MemberTable table("/p/", "self");
  auto [key, value] = Kv(Node("a", 1));
  table.Put(key, value, kT0);
  auto changes = table.Delete(key);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].kind, Kind::kLeft);
  EXPECT_EQ(changes[0].member.incarnation, 1u);
  EXPECT_TRUE(table.Delete(key).empty());
  EXPECT_TRUE(table.Delete("/p/nodes/never").empty());
  EXPECT_TRUE(table.Snapshot().empty());
}

TEST(MemberTable, KeysOfNoNodeAndBadRecordsAreSkipped) {
  MemberTable table("/p/", "self");
  EXPECT_TRUE(table.Put("/p/other/a", EncodeMember(Node("a", 1)), kT0).empty());
  EXPECT_TRUE(table.Put("/p/nodes/a/extra", EncodeMember(Node("a", 1)), kT0).empty());
  EXPECT_TRUE(table.Put("/q/nodes/a", EncodeMember(Node("a", 1)), kT0).empty());
  EXPECT_EQ(table.skipped(), 0u);  // not ours to look at
  EXPECT_TRUE(table.Put("/p/nodes/a", "garbage", kT0).empty());
  EXPECT_TRUE(table.Put("/p/nodes/a", EncodeMember(Node("b", 1)), kT0).empty());  // name != key
  EXPECT_EQ(table.skipped(), 2u);
  EXPECT_TRUE(table.Snapshot().empty());
}

}  // namespace
}  // namespace axon::daemon
