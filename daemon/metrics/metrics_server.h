// The Prometheus endpoint: GET /metrics over HTTP/1.1, served by
// cpp-httplib (Debian's libcpp-httplib) on a thread of its own, so that a
// slow scraper never holds the main loop or the UCX thread. Each scrape
// renders a fresh snapshot; there is no state to keep between scrapes.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace axon::daemon::metrics {

class MetricsServer {
 public:
  // The exposition text, or why there is none (503 to the scraper).
  using Render = std::function<absl::StatusOr<std::string>()>;

  // Binds `listen` ("ip:port", "[ipv6]:port"; port 0 picks one) and serves.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen,
                                                              Render render);
  // Stops serving and waits for a scrape in progress.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // "ip:port" as bound (the real port when 0 was asked for).
  const std::string& address() const { return address_; }
  uint64_t scrapes() const;

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string address_;
  std::shared_ptr<std::atomic<uint64_t>> scrapes_;
};

}  // namespace axon::daemon::metrics
