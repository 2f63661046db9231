#include "common/process_info.h"

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace axon {

absl::StatusOr<std::vector<gid_t>> SupplementaryGroups(pid_t pid) {
  const std::string path = absl::StrCat("/proc/", pid, "/status");
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::vector<gid_t> groups;
    for (absl::string_view field :
         absl::StrSplit(line.substr(7), absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      uint32_t gid = 0;
      if (!absl::SimpleAtoi(field, &gid)) {
        return absl::InternalError(absl::StrCat("unexpected Groups line in ", path, ": ", line));
      }
      groups.push_back(static_cast<gid_t>(gid));
    }
    return groups;
  }
  return absl::NotFoundError(absl::StrCat("no Groups line in ", path));
}

}  // namespace axon
