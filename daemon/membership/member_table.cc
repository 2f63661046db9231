#include "daemon/membership/member_table.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace axon::daemon {

MemberTable::MemberTable(std::string prefix, std::string self)
    : prefix_(std::move(prefix)), self_(std::move(self)) {}

std::string MemberTable::KeyOf(absl::string_view prefix, absl::string_view name) {
  return absl::StrCat(prefix, "nodes/", name);
}

std::string MemberTable::NameOf(absl::string_view key) const {
  const std::string head = KeyOf(prefix_, "");
  if (!absl::StartsWith(key, head)) return "";
  key.remove_prefix(head.size());
  if (key.empty() || key.find('/') != absl::string_view::npos) return "";
  return std::string(key);
}

std::vector<MemberTable::Change> MemberTable::Put(absl::string_view key, absl::string_view value,
                                                  absl::Time now) {
  const std::string name = NameOf(key);
  if (name.empty() || name == self_) return {};
  auto member = DecodeMember(value);
  if (!member.ok() || member->name != name) {
    ++skipped_;
    spdlog::warn("membership: skipped the record at '{}': {}", key,
                 member.ok() ? "its name is not the key's" : member.status().message());
    return {};
  }
  auto it = members_.find(name);
  if (it != members_.end() && it->second.member.SameAs(*member)) {
    it->second.member = *std::move(member);  // a re-registration: same daemon
    return {};
  }
  Entry& entry = members_[name];
  entry.member = *member;
  entry.joined = now;
  return {{Change::Kind::kJoined, *std::move(member)}};
}

std::vector<MemberTable::Change> MemberTable::Delete(absl::string_view key) {
  auto it = members_.find(NameOf(key));
  if (it == members_.end()) return {};
  Change left{Change::Kind::kLeft, std::move(it->second.member)};
  members_.erase(it);
  return {std::move(left)};
}

std::vector<MemberTable::Change> MemberTable::Replace(
    const std::vector<std::pair<std::string, std::string>>& kvs, absl::Time now) {
  std::vector<Change> changes;
  std::map<std::string, bool> seen;
  for (const auto& [key, value] : kvs) {
    const std::string name = NameOf(key);
    if (name.empty() || name == self_) continue;
    seen[name] = true;
    for (Change& c : Put(key, value, now)) changes.push_back(std::move(c));
  }
  for (auto it = members_.begin(); it != members_.end();) {
    if (seen.count(it->first) != 0) {
      ++it;
      continue;
    }
    changes.push_back({Change::Kind::kLeft, std::move(it->second.member)});
    it = members_.erase(it);
  }
  return changes;
}

std::vector<MemberTable::Entry> MemberTable::Snapshot() const {
  std::vector<Entry> out;
  out.reserve(members_.size());
  for (const auto& [name, entry] : members_) out.push_back(entry);
  return out;
}

}  // namespace axon::daemon
