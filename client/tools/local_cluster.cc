#include "client/tools/local_cluster.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

extern char** environ;

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
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, d.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&d.pid, axond_.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      d.pid = -1;
      return absl::InternalError(absl::StrCat("cannot start ", axond_, ": ", strerror(rc)));
    }
  }
  return absl::OkStatus();
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
