#include "common/process_info.h"

#include <sys/resource.h>

#include <filesystem>
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

absl::StatusOr<uint64_t> OpenFdCount() {
  uint64_t count = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++count;
  }
  if (ec) return absl::NotFoundError("cannot list /proc/self/fd: " + ec.message());
  return count > 0 ? count - 1 : 0;  // less the listing's own
}

absl::StatusOr<ProcessUsage> OwnUsage() {
  ProcessUsage usage;
  std::ifstream status("/proc/self/status");
  if (!status) return absl::NotFoundError("cannot read /proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    const bool rss = line.rfind("VmRSS:", 0) == 0;
    const bool threads = line.rfind("Threads:", 0) == 0;
    if (!rss && !threads) continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    uint64_t n = 0;
    if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &n)) continue;
    if (rss) usage.resident_bytes = n * 1024;  // "VmRSS:   1234 kB"
    if (threads) usage.threads = n;
  }
  auto fds = OpenFdCount();
  if (!fds.ok()) return fds.status();
  usage.open_fds = *fds;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) usage.max_fds = limit.rlim_cur;
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0) {
    auto seconds = [](const timeval& tv) {
      return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
    };
    usage.cpu_seconds = seconds(ru.ru_utime) + seconds(ru.ru_stime);
  }
  return usage;
}

}  // namespace axon
