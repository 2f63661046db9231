// Two axond processes on loopback, started and stopped by a tool (`axon
// demo`, `axon-bench`): each with its own socket, UCX port and node name,
// listed as each other's static peers. Sockets and logs go to a run folder.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace axon::tools {

struct LocalDaemon {
  std::string name, socket, log;
  int port = 0;
  pid_t pid = -1;
};

class LocalCluster {
 public:
  // `axond`: the binary; empty means build/daemon/axond next to the caller's
  // own folder (build/client or build/bench). `extra_sets`: --set KEY=VALUE.
  LocalCluster(std::string run_dir, std::string axond, std::vector<std::string> extra_sets = {});
  ~LocalCluster();  // stops what is still running, unless Keep() was called
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Starts node-a and node-b ("<prefix>-a", "<prefix>-b") and waits until
  // both listen; a daemon that exits meanwhile fails it, with its last log
  // lines.
  absl::Status Start(const std::string& prefix);
  void Stop();
  void Keep() { keep_ = true; }

  const LocalDaemon& a() const { return daemons_[0]; }
  const LocalDaemon& b() const { return daemons_[1]; }
  const std::string& run_dir() const { return run_dir_; }

 private:
  std::string run_dir_, axond_;
  std::vector<std::string> extra_sets_;
  std::vector<LocalDaemon> daemons_;
  bool keep_ = false;
};

}  // namespace axon::tools
