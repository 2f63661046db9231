#include "bench/axon_bench/baseline.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/axonctl/admin_client.h"
#include "client/tools/spawn.h"

namespace axon::bench {
namespace {

int WaitExit(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -2;
}

}  // namespace

absl::StatusOr<PerftestResult> Perftest::Run(const std::string& test, const std::string& tls,
                                             size_t size, int iterations, int window,
                                             const std::string& memory,
                                             const std::string& cuda_devices) {
  if (binary_.empty()) return absl::UnavailableError("ucx_perftest not found");
  const int port = 24000 + (::getpid() % 500) * 8 + (next_port_++ % 8);
  const std::string dir = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
  const std::string server_log = absl::StrCat(dir, "/axon-bench-perftest-server-", ::getpid());
  const std::string client_log = absl::StrCat(dir, "/axon-bench-perftest-client-", ::getpid());
  std::vector<std::string> env = {"UCX_TLS=" + tls, "UCX_WARN_UNUSED_ENV_VARS=n"};
  if (!cuda_devices.empty()) env.push_back("CUDA_VISIBLE_DEVICES=" + cuda_devices);
  if (!library_path_.empty()) {
    const char* old = std::getenv("LD_LIBRARY_PATH");
    env.push_back(absl::StrCat("LD_LIBRARY_PATH=", library_path_, old ? ":" : "", old ? old : ""));
  }
  std::vector<std::string> server_args = {binary_, "-p", std::to_string(port), "-m", memory};
  std::vector<std::string> client_args = {binary_, "127.0.0.1",
                                          "-p",    std::to_string(port),
                                          "-t",    test,
                                          "-s",    std::to_string(size),
                                          "-n",    std::to_string(iterations),
                                          "-w",    std::to_string(std::max(1, iterations / 10)),
                                          "-W",    std::to_string(window),
                                          "-m",    memory,
                                          "-f"};
  // Each with stdout and stderr in its log.
  const auto server = tools::SpawnWithOutput(server_args, env, server_log, server_log);
  if (!server.ok()) return server.status();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto client = tools::SpawnWithOutput(client_args, env, client_log, client_log);
  const int code = client.ok() ? WaitExit(*client, std::chrono::seconds(120)) : -1;
  WaitExit(*server, std::chrono::seconds(5));
  std::ifstream in(client_log);
  std::stringstream text;
  text << in.rdbuf();
  ::unlink(server_log.c_str());
  ::unlink(client_log.c_str());
  if (code != 0) {
    return absl::InternalError(
        absl::StrCat("ucx_perftest ", test, " exited ", code, ": ", text.str().substr(0, 400)));
  }
  // The last line of numbers: iterations, lat p50, lat avg, lat overall,
  // bw avg, bw overall (MB/s), rate avg, rate overall.
  std::vector<double> numbers;
  std::string line;
  while (std::getline(text, line)) {
    std::vector<double> row;
    for (absl::string_view f : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      char* end = nullptr;
      const std::string field(f);
      const double v = std::strtod(field.c_str(), &end);
      if (end == field.c_str() || *end != '\0') {
        row.clear();
        break;
      }
      row.push_back(v);
    }
    if (row.size() == 8) numbers = row;
  }
  if (numbers.empty()) {
    return absl::InternalError("cannot read ucx_perftest's result: " + text.str().substr(0, 400));
  }
  // ucx_perftest counts MB as 2^20 bytes.
  return PerftestResult{numbers[1], numbers[7], numbers[5] * 1048576.0 / 1e9};
}

std::string PeerTransports(const std::string& socket) {
  ctl::AdminClient admin(socket, std::chrono::seconds(5));
  auto peers = admin.ListPeers();
  std::set<std::string> tls;
  if (peers.ok()) {
    for (const auto& p : peers->peers()) {
      for (const auto& lane : p.transports()) {
        tls.insert(std::string(lane.substr(0, lane.find('/'))));
      }
    }
  }
  tls.erase("");
  // Host rows: the CUDA transports carry no host memory.
  for (auto it = tls.begin(); it != tls.end();) {
    it = it->rfind("cuda", 0) == 0 || *it == "gdr_copy" ? tls.erase(it) : std::next(it);
  }
  return tls.empty() ? "tcp" : absl::StrJoin(tls, ",");
}

}  // namespace axon::bench
