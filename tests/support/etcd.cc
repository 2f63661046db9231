#include "tests/support/etcd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "common/unique_fd.h"

namespace axon::testing {
namespace {

// etcd's /health says true once it has a leader: only then does it serve.
bool Healthy(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval timeout{.tv_sec = 1, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return false;
  const std::string request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::write(fd.get(), request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    return false;
  }
  std::string reply;
  char buffer[1024];
  for (ssize_t n; (n = ::read(fd.get(), buffer, sizeof(buffer))) > 0;) reply.append(buffer, n);
  return reply.find("\"health\":\"true\"") != std::string::npos;
}

}  // namespace

std::string EtcdPath() {
  if (const char* env = std::getenv("AXON_ETCD"); env != nullptr && *env != '\0') return env;
  return ::access("/usr/bin/etcd", X_OK) == 0 ? "/usr/bin/etcd" : "";
}

Etcd::Etcd(const TempDir& dir, int client_port, int peer_port, int metrics_port)
    : dir_(dir), client_port_(client_port), peer_port_(peer_port), metrics_port_(metrics_port) {}

Etcd::~Etcd() {
  if (child_) {
    child_->Signal(SIGCONT);  // a paused etcd cannot die of SIGKILL's cleanup otherwise
    child_->Signal(SIGKILL);
    child_->Wait(std::chrono::seconds(5));
  }
}

std::string Etcd::endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }

void Etcd::Start() {
  const std::string client = (cert_.empty() ? "http://" : "https://") + endpoint();
  const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  std::vector<std::string> argv = {EtcdPath(),
                                   "--name",
                                   "axon-test",
                                   "--data-dir",
                                   dir_.File("etcd-data"),
                                   "--listen-client-urls",
                                   client,
                                   "--advertise-client-urls",
                                   client,
                                   "--listen-peer-urls",
                                   peer,
                                   "--initial-advertise-peer-urls",
                                   peer,
                                   "--initial-cluster",
                                   "axon-test=" + peer,
                                   "--listen-metrics-urls",
                                   "http://127.0.0.1:" + std::to_string(metrics_port_),
                                   "--log-level",
                                   "warn"};
  if (!cert_.empty()) {
    argv.insert(argv.end(), {"--cert-file", cert_, "--key-file", key_});
  }
  child_ = std::make_unique<Child>(argv, dir_.File("etcd.log"));
  WaitReady(std::chrono::seconds(30));
}

bool Etcd::running() { return child_ && child_->running(); }

void Etcd::Stop() {
  child_->Signal(SIGTERM);
  child_->Wait(std::chrono::seconds(10));
}

void Etcd::Pause() { child_->Signal(SIGSTOP); }
void Etcd::Resume() { child_->Signal(SIGCONT); }

std::string Etcd::Log() const { return ReadFile(dir_.File("etcd.log")); }

bool Etcd::WaitReady(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (!child_->running()) return false;
    if (Healthy(metrics_port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace axon::testing
