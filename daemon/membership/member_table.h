// MemberTable: the members under the etcd prefix as one watcher has seen
// them, and what each full read or watch event changed. No I/O: Membership
// feeds it; tests drive it directly.
//
// Keys are `<prefix>nodes/<name>`; a record under a key of another name, or
// one that does not decode, is skipped (and counted). This node's own key is
// not a member.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/membership/member.h"

namespace axon::daemon {

class MemberTable {
 public:
  struct Change {
    enum class Kind { kJoined, kLeft };
    Kind kind;
    // kJoined: the new record (a new node, or a new incarnation or address
    // of a known one); kLeft: the last record seen.
    Member member;
  };
  struct Entry {
    Member member;
    absl::Time joined;  // when this table first saw this incarnation
  };

  MemberTable(std::string prefix, std::string self);

  // A full read of the prefix: what is not in it left, what is new joined.
  std::vector<Change> Replace(const std::vector<std::pair<std::string, std::string>>& kvs,
                              absl::Time now);
  std::vector<Change> Put(absl::string_view key, absl::string_view value, absl::Time now);
  std::vector<Change> Delete(absl::string_view key);

  std::vector<Entry> Snapshot() const;
  uint64_t skipped() const { return skipped_; }
  static std::string KeyOf(absl::string_view prefix, absl::string_view name);

 private:
  // The name a key stands for, or "" for a key that is no node's.
  std::string NameOf(absl::string_view key) const;

  std::string prefix_, self_;
  std::map<std::string, Entry> members_;
  uint64_t skipped_ = 0;
};

}  // namespace axon::daemon
