#include "daemon/fd_budget.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/process_info.h"

namespace axon::daemon {

FdBudget FdBudget::Raise(uint64_t reserve) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("open files: cannot read the limit: {}", std::strerror(errno));
    return FdBudget(1024, reserve);
  }
  const rlim_t before = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      spdlog::warn("open files: cannot raise the soft limit from {} to {}: {}", before,
                   limit.rlim_max, std::strerror(errno));
      limit.rlim_cur = before;
    }
  }
  if (limit.rlim_cur == before) {
    spdlog::info("open files: limit {} (the hard limit); {} kept free (sessions.fd_reserve)",
                 limit.rlim_cur, reserve);
  } else {
    spdlog::info(
        "open files: soft limit raised from {} to {} (the hard limit); {} kept free "
        "(sessions.fd_reserve)",
        before, limit.rlim_cur, reserve);
  }
  if (limit.rlim_cur <= reserve * 2) {
    spdlog::warn(
        "open files: a limit of {} leaves little room past sessions.fd_reserve ({}); "
        "raise LimitNOFILE",
        limit.rlim_cur, reserve);
  }
  return FdBudget(static_cast<uint64_t>(limit.rlim_cur), reserve);
}

absl::Status FdBudget::CheckConnection(absl::string_view socket) const {
  return Check(absl::StrCat("new connections to the ", socket), reserve_ / 2);
}

absl::Status FdBudget::Check(absl::string_view what, uint64_t keep) const {
  auto open = OpenFdCount();
  if (!open.ok()) return absl::OkStatus();  // no /proc: nothing to measure with
  if (*open + keep < limit_) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("axond has ", *open, " of its ", limit_, " file descriptors open; ", what,
                   " are refused while fewer than ", keep,
                   " are free (sessions.fd_reserve; raise LimitNOFILE for more)"));
}

}  // namespace axon::daemon
