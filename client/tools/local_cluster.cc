#include "client/tools/local_cluster.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/tools/spawn.h"

namespace axon::tools {
namespace {

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Whether a daemon accepts connections on Unix socket `path`.
bool Listening(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// The last `n` lines of file `path`, joined by " | ".
std::string Tail(const std::string& path, size_t n) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : " | ", lines[i]);
  }
  return out;
}

}  // namespace

LocalCluster::LocalCluster(std::string run_dir, std::string axond,
                           std::vector<std::string> extra_sets)
    : run_dir_(std::move(run_dir)), axond_(std::move(axond)), extra_sets_(std::move(extra_sets)) {
  if (axond_.empty()) {
    const auto self = std::filesystem::read_symlink("/proc/self/exe");
    axond_ = (self.parent_path().parent_path() / "daemon" / "axond").string();
  }
}

LocalCluster::~LocalCluster() {
  if (!keep_) Stop();
}

absl::Status LocalCluster::Start(const std::string& prefix) {
  std::error_code ec;
  std::filesystem::create_directories(run_dir_, ec);
  run_dir_ = std::filesystem::absolute(run_dir_).string();
  daemons_.clear();
  for (const char* suffix : {"a", "b"}) {
    daemons_.push_back({.name = absl::StrCat(prefix, "-", suffix),
                        .socket = absl::StrCat(run_dir_, "/", suffix, ".sock"),
                        .log = absl::StrCat(run_dir_, "/", suffix, ".log"),
                        .port = FreePort()});
  }
  const std::string peers = absl::StrFormat(
      "peers.static=[{name: %s, address: \"127.0.0.1:%d\"}, {name: %s, address: "
      "\"127.0.0.1:%d\"}]",
      daemons_[0].name, daemons_[0].port, daemons_[1].name, daemons_[1].port);
  for (LocalDaemon& d : daemons_) {
    std::vector<std::string> args = {axond_,
                                     "--set",
                                     "node.name=" + d.name,
                                     "--set",
                                     "control.socket=" + d.socket,
                                     "--set",
                                     absl::StrFormat("peers.listen=127.0.0.1:%d", d.port),
                                     "--set",
                                     peers,
                                     "--set",
                                     "log.level=warn"};
    for (const auto& set : extra_sets_) {
      args.push_back("--set");
      args.push_back(set);
    }
    auto pid = SpawnWithOutput(args, {}, "/dev/null", d.log);  // axond logs to stderr
    if (!pid.ok()) {
      d.pid = -1;
      return pid.status();
    }
    d.pid = *pid;
  }
  // Until both listen, or one exits (a bad setting, say): then say why.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    bool all = true;
    for (LocalDaemon& d : daemons_) {
      int status = 0;
      if (::waitpid(d.pid, &status, WNOHANG) == d.pid) {
        d.pid = -1;
        return absl::FailedPreconditionError(
            absl::StrCat("axond ", d.name, " exited at start (",
                         WIFEXITED(status) ? absl::StrCat("code ", WEXITSTATUS(status))
                                           : absl::StrCat("signal ", WTERMSIG(status)),
                         "): ", Tail(d.log, 3), " (log: ", d.log, ")"));
      }
      all = all && Listening(d.socket);
    }
    if (all) return absl::OkStatus();
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the daemons did not listen within 30 s (logs in ", run_dir_, ")"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void LocalCluster::Stop() {
  for (LocalDaemon& d : daemons_) {
    if (d.pid <= 0) continue;
    ::kill(d.pid, SIGTERM);
    int status = 0;
    ::waitpid(d.pid, &status, 0);
    d.pid = -1;
  }
}

}  // namespace axon::tools
