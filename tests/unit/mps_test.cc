// MpsServerOfAnotherUser against a proc tree of real files laid out as
// /proc is: an MPS control daemon, MPS servers, and entries to skip.
#include "daemon/cuda/mps.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/process.h"

namespace axon::daemon {
namespace {

using axon::testing::TempDir;

void AddProcess(const TempDir& proc, const std::string& pid, const std::string& cmdline,
                const std::string& uid_line) {
  const std::filesystem::path dir = std::filesystem::path(proc.path()) / pid;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "cmdline") << cmdline;
  std::ofstream(dir / "status") << "Name:\tx\nUmask:\t0022\n" << uid_line << "\nGid:\t0\t0\t0\t0\n";
}

TEST(MpsServer, FoundOnlyWhenAnotherUserRunsIt) {
  TempDir proc;
  using namespace std::string_literals;
  AddProcess(proc, "12", "/usr/bin/nvidia-cuda-mps-control\0-d\0"s, "Uid:\t0\t0\t0\t0");
  AddProcess(proc, "900", "bash\0"s, "Uid:\t1000\t1000\t1000\t1000");
  std::filesystem::create_directories(std::filesystem::path(proc.path()) / "self");
  std::filesystem::create_directories(std::filesystem::path(proc.path()) / "4242");  // unreadable
  // The control daemon alone is no server.
  EXPECT_EQ(MpsServerOfAnotherUser(proc.path(), 1000), std::nullopt);
  AddProcess(proc, "345", "nvidia-cuda-mps-server\0"s, "Uid:\t1000\t1000\t1000\t1000");
  EXPECT_EQ(MpsServerOfAnotherUser(proc.path(), 1000), std::nullopt);  // ours
  EXPECT_EQ(MpsServerOfAnotherUser(proc.path(), 0), std::optional<uid_t>(1000));
  EXPECT_EQ(MpsServerOfAnotherUser(proc.path(), 7), std::optional<uid_t>(1000));
}

TEST(MpsServer, AMissingProcTreeFindsNone) {
  EXPECT_EQ(MpsServerOfAnotherUser("/nonexistent-proc-axon", 0), std::nullopt);
}

}  // namespace
}  // namespace axon::daemon
