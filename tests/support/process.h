// Test support: real child processes (axond, axonctl, helper clients) started
// with posix_spawn, with their output captured, and temporary directories.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace axon::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when
// the object goes. Short, so socket paths stay under the 107-byte limit.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string out;
  std::string err;
};

struct SpawnOptions {
  std::map<std::string, std::string> env;  // added to (or replacing in) the environment
  std::optional<uid_t> uid;                // run as this user (and gid); needs root
  std::optional<gid_t> gid;
  std::optional<uint64_t> max_fds;  // RLIMIT_NOFILE, soft and hard
};

// Runs a program to completion, capturing stdout and stderr.
RunResult RunProgram(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// A child process that runs in the background, its stderr going to a file.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log_path,
        const SpawnOptions& options = {});
  ~Child();  // SIGKILLs the child if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Waits for exit; returns the exit code, -SIG if killed by a signal, or
  // nullopt if it did not exit within `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

std::string ReadFile(const std::string& path);
// Open file descriptors of process `pid` (-1 when it cannot be read).
int OpenFds(pid_t pid);
// The /proc/PID/task/TID directories of process `pid`'s threads named `name`
// (their comm); none when it cannot be read.
std::vector<std::string> ThreadsNamed(pid_t pid, const std::string& name);
// Bytes of client host-memory memfds ("axon-host") mapped into process `pid`.
uint64_t MappedClientBytes(pid_t pid);
void WriteFile(const std::string& path, const std::string& content);

// Polls `predicate` every 20 ms until it holds or `timeout` passes.
template <typename Predicate>
bool WaitFor(Predicate predicate, std::chrono::milliseconds timeout);

}  // namespace axon::testing

#include <thread>

template <typename Predicate>
bool axon::testing::WaitFor(Predicate predicate, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return predicate();
}
