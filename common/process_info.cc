#include "common/process_info.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
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

namespace {

// Entries of /proc/PID/fd (the listing's own descriptor among them when
// PID is this process).
absl::StatusOr<uint64_t> CountFds(const std::string& proc) {
  uint64_t count = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(proc + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++count;
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list ", proc, "/fd: ", ec.message()));
  return count;
}

// RSS, threads, descriptors and CPU time from /proc/PID (`proc`).
absl::StatusOr<ProcessUsage> ReadUsage(const std::string& proc) {
  ProcessUsage usage;
  std::ifstream status(proc + "/status");
  if (!status) return absl::NotFoundError(absl::StrCat("cannot read ", proc, "/status"));
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
  auto fds = CountFds(proc);
  if (!fds.ok()) return fds.status();
  usage.open_fds = *fds;
  // utime and stime: fields 14 and 15, counted after the ")" that ends the
  // command name (which may hold spaces).
  std::ifstream stat(proc + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  if (const size_t paren = text.rfind(')'); paren != std::string::npos) {
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(text).substr(paren + 2), ' ', absl::SkipEmpty());
    uint64_t utime = 0, stime = 0;
    if (fields.size() > 12 && absl::SimpleAtoi(fields[11], &utime) &&
        absl::SimpleAtoi(fields[12], &stime)) {
      usage.cpu_seconds =
          static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
  }
  return usage;
}

}  // namespace

absl::StatusOr<uint64_t> OpenFdCount() {
  auto count = CountFds("/proc/self");
  if (!count.ok()) return count.status();
  return *count > 0 ? *count - 1 : 0;  // less the listing's own
}

absl::StatusOr<ProcessUsage> OwnUsage() {
  auto usage = ReadUsage("/proc/self");
  if (!usage.ok()) return usage;
  if (usage->open_fds > 0) --usage->open_fds;  // the listing's own
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) usage->max_fds = limit.rlim_cur;
  return usage;
}

absl::StatusOr<ProcessUsage> UsageOf(pid_t pid) { return ReadUsage(absl::StrCat("/proc/", pid)); }

}  // namespace axon
