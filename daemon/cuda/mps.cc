#include "daemon/cuda/mps.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace axon::daemon {
namespace {

// The real uid from /proc/PID/status ("Uid:\treal\teffective\t...").
std::optional<uid_t> RealUid(const std::filesystem::path& status) {
  std::ifstream in(status);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) != 0) continue;
    std::istringstream fields(line.substr(4));
    unsigned long uid = 0;
    if (fields >> uid) return static_cast<uid_t>(uid);
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::optional<uid_t> MpsServerOfAnotherUser(const std::string& proc_root, uid_t self) {
  std::error_code ec;
  std::filesystem::directory_iterator it(proc_root, ec);
  if (ec) return std::nullopt;
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    // cmdline's first word: comm is cut to 15 characters, which the control
    // daemon shares.
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string argv0;
    if (!std::getline(cmdline, argv0, '\0')) continue;
    if (std::filesystem::path(argv0).filename() != "nvidia-cuda-mps-server") continue;
    auto uid = RealUid(entry.path() / "status");
    if (uid && *uid != self) return uid;
  }
  return std::nullopt;
}

}  // namespace axon::daemon
