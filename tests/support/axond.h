// Test support: a real axond process on its own socket in a temp directory,
// and the real axonctl pointed at it. Binary paths come from CMake.
#pragma once

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace axon::testing {

std::string AxondPath();
std::string AxonctlPath();
std::string HelperPath(const std::string& name);  // test helper programs

struct AxondOptions {
  std::string node_name = "node-a";
  // Names the socket, log and config files; defaults to node_name. Two
  // daemons that claim the same node name need different instances.
  std::string instance;
  std::vector<std::string> sets;  // extra --set KEY=VALUE
  std::string config_yaml;        // written to a file and passed with --config when non-empty
  std::map<std::string, std::string> env;
  std::optional<uint64_t> max_fds;  // its RLIMIT_NOFILE, soft and hard
  // Runs axond through this command line, e.g. {"ip", "netns", "exec", "ns"}
  // (which execs it: the child is still axond).
  std::vector<std::string> wrapper;
};

class Axond {
 public:
  // Starts axond with its socket at dir/<node_name>.sock. Does not wait.
  Axond(const TempDir& dir, AxondOptions options = {});
  // A daemon still running is stopped with SIGTERM, and must exit 0 with no
  // sanitizer report in its log: every test checks a clean shutdown.
  ~Axond();
  Axond(const Axond&) = delete;
  Axond& operator=(const Axond&) = delete;

  // Waits until the control socket accepts connections (or the process died).
  bool WaitReady(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // Runs axonctl against this daemon.
  RunResult Ctl(std::vector<std::string> args, const SpawnOptions& options = {}) const;
  // `axonctl --json ARGS`, parsed; an empty message when it printed none
  // (the daemon is down), for callers that poll.
  template <typename Message>
  Message CtlJson(std::vector<std::string> args) const {
    args.insert(args.begin(), "--json");
    Message message;
    (void)google::protobuf::util::JsonStringToMessage(Ctl(std::move(args)).out, &message);
    return message;
  }

  const std::string& socket() const { return socket_; }
  const std::string& config_path() const { return config_path_; }
  Child& process() { return *child_; }

 private:
  std::string socket_;
  std::string config_path_;
  std::unique_ptr<Child> child_;
};

}  // namespace axon::testing
