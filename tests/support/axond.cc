#include "tests/support/axond.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>

#include "common/unix_socket.h"

namespace axon::testing {

std::string AxondPath() { return AXON_TEST_AXOND; }
std::string AxonctlPath() { return AXON_TEST_AXONCTL; }
std::string HelperPath(const std::string& name) {
  return std::string(AXON_TEST_HELPER_DIR) + "/" + name;
}

Axond::Axond(const TempDir& dir, AxondOptions options) {
  const std::string instance = options.instance.empty() ? options.node_name : options.instance;
  socket_ = dir.File(instance + ".sock");
  std::vector<std::string> argv = {AxondPath(), "--set", "control.socket=" + socket_, "--set",
                                   "node.name=" + options.node_name};
  if (!options.config_yaml.empty()) {
    config_path_ = dir.File(instance + ".yaml");
    WriteFile(config_path_, options.config_yaml);
    argv.insert(argv.begin() + 1, {"--config", config_path_});
  }
  // The suites that run again with several engine shards (tests/CMakeLists.txt)
  // set this; a test that sets its own count keeps it.
  if (const char* shards = std::getenv("AXON_TEST_ENGINE_SHARDS"); shards != nullptr) {
    argv.push_back("--set");
    argv.push_back(std::string("engine.shards=") + shards);
  }
  for (const auto& set : options.sets) {
    argv.push_back("--set");
    argv.push_back(set);
  }
  argv.insert(argv.begin(), options.wrapper.begin(), options.wrapper.end());
  child_ = std::make_unique<Child>(argv, dir.File(instance + ".log"),
                                   SpawnOptions{.env = options.env, .max_fds = options.max_fds});
}

Axond::~Axond() {
  // One that died on its own in a failed test says how it ended: the test's
  // directory, and with it the log, is not where CI can read it.
  if (!child_->running() && ::testing::Test::HasFailure()) {
    const std::string log = child_->Log();
    const auto code = child_->Wait(std::chrono::milliseconds(0));
    constexpr size_t kTail = 8000;
    std::cerr << "axond " << socket_ << " had exited (" << code.value_or(0)
              << ", negative: by that signal); the end of its log:\n"
              << (log.size() > kTail ? log.substr(log.size() - kTail) : log) << "\n";
  }
  if (child_->running()) {
    child_->Signal(SIGTERM);
    const auto code = child_->Wait(std::chrono::seconds(30));
    EXPECT_EQ(code, 0) << "axond did not shut down cleanly:\n" << child_->Log();
  }
  const std::string log = child_->Log();
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                             "runtime error:", "WARNING: ThreadSanitizer"}) {
    EXPECT_EQ(log.find(marker), std::string::npos) << "sanitizer report in axond's log:\n" << log;
  }
}

bool Axond::WaitReady(std::chrono::milliseconds timeout) {
  return WaitFor(
             [this] {
               if (!child_->running()) return true;
               auto probe = ProbeUnixSocket(socket_);
               return probe.ok() && *probe == SocketProbe::kLive;
             },
             timeout) &&
         child_->running();
}

RunResult Axond::Ctl(std::vector<std::string> args, const SpawnOptions& options) const {
  args.insert(args.begin(), {AxonctlPath(), "--socket", socket_});
  return RunProgram(args, options);
}

}  // namespace axon::testing
