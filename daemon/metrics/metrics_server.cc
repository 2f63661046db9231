#include "daemon/metrics/metrics_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/metrics/exposition.h"

namespace axon::daemon::metrics {
namespace {

// Scrapes are small and rare; a stuck client must not hold the thread long.
constexpr time_t kIoTimeoutSeconds = 5;

struct HostPort {
  std::string host;
  int port = 0;
};

absl::StatusOr<HostPort> Split(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics.listen: expected \"ip:port\", found '", listen, "'"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return HostPort{std::move(host), port};
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen,
                                                                    Render render) {
  auto where = Split(listen);
  if (!where.ok()) return where.status();
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->server_ = std::make_unique<httplib::Server>();
  s->scrapes_ = std::make_shared<std::atomic<uint64_t>>(0);
  httplib::Server& server = *s->server_;
  // One scrape at a time: they are rare, and each holds the UCX thread briefly.
  server.new_task_queue = [] { return new httplib::ThreadPool(1); };
  server.set_read_timeout(kIoTimeoutSeconds, 0);
  server.set_write_timeout(kIoTimeoutSeconds, 0);
  server.set_payload_max_length(4096);
  server.Get("/metrics", [render = std::move(render), scrapes = s->scrapes_](
                             const httplib::Request&, httplib::Response& response) {
    scrapes->fetch_add(1, std::memory_order_relaxed);
    auto text = render();
    if (!text.ok()) {
      response.status = 503;
      response.set_content(
          absl::StrCat("axond cannot read its metrics now: ", text.status().message(), "\n"),
          "text/plain; charset=utf-8");
      return;
    }
    response.set_content(*std::move(text), kContentType);
  });
  server.Get("/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("axond: metrics at /metrics\n", "text/plain; charset=utf-8");
  });
  int port = where->port;
  if (port == 0) {
    port = server.bind_to_any_port(where->host);
  } else if (!server.bind_to_port(where->host, port)) {
    port = -1;
  }
  if (port < 0) {
    return absl::UnavailableError(absl::StrCat("metrics.listen: cannot listen on ", listen,
                                               " (address in use, or not this host's)"));
  }
  const bool v6 = where->host.find(':') != std::string::npos;
  s->address_ =
      v6 ? absl::StrCat("[", where->host, "]:", port) : absl::StrCat(where->host, ":", port);
  s->thread_ = std::thread([&server] { server.listen_after_bind(); });
  // Until it runs, stop() would not reach it, and the destructor's join
  // would wait forever.
  for (int i = 0; i < 2000 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server.is_running()) {
    return absl::InternalError("metrics.listen: the HTTP server did not start");
  }
  return s;
}

MetricsServer::~MetricsServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

uint64_t MetricsServer::scrapes() const { return scrapes_->load(std::memory_order_relaxed); }

}  // namespace axon::daemon::metrics
