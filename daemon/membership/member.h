// One daemon as the cluster's membership knows it (peers.discovery: etcd),
// and its record in etcd: axon.v1.NodeRecord as JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace axon::daemon {

struct Member {
  std::string name;
  std::string address;  // its peer listener, "ip:port"
  uint32_t wire_version = 0;
  uint64_t capabilities = 0;
  uint64_t incarnation = 0;  // new at each start
  absl::Time started;
  std::vector<std::string> transports;
  std::string version;

  // The same daemon, started once: name, incarnation and address.
  bool SameAs(const Member& other) const {
    return name == other.name && incarnation == other.incarnation && address == other.address;
  }
};

std::string EncodeMember(const Member& member);
// Refuses a record that is not valid JSON of a NodeRecord, or lacks a name,
// an address that parses, or an incarnation.
absl::StatusOr<Member> DecodeMember(absl::string_view json);

}  // namespace axon::daemon
