// The Prometheus endpoint of real daemons: off by default, on with
// metrics.listen, and under real traffic (messages and calls across two
// daemons) it exports what moved, per peer, session and method. A real
// Prometheus scrapes it in python/tests/test_prometheus.py.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "axon/call.h"
#include "axon/v1/admin.pb.h"
#include "common/unique_fd.h"
#include "tests/support/pair_test.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

std::string MetricsAddress(const Axond& daemon) {
  return daemon.CtlJson<v1::StatusResponse>({"status"}).metrics_address();
}

struct Scrape {
  int status = 0;
  std::string content_type;
  std::string body;
};

Scrape Get(const std::string& address, const std::string& path) {
  const size_t colon = address.rfind(':');
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(colon + 1), &port)) << address;
  httplib::Client client(address.substr(0, colon), port);
  client.set_read_timeout(10, 0);
  auto result = client.Get(path);
  if (!result) return {};
  return {result->status, result->get_header_value("Content-Type"), result->body};
}

// The value of the sample whose name and labels are exactly `series`.
std::optional<double> Value(const std::string& text, const std::string& series) {
  const std::string prefix = series + " ";
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const absl::string_view line(text.data() + at, end - at);
    if (line.substr(0, prefix.size()) == prefix) {
      double v = 0;
      if (absl::SimpleAtod(line.substr(prefix.size()), &v)) return v;
    }
    at = end + 1;
  }
  return std::nullopt;
}

TEST(MetricsTest, OffByDefault) {
  TempDir dir;
  Axond daemon(dir);
  ASSERT_TRUE(daemon.WaitReady()) << daemon.process().Log();
  EXPECT_EQ(MetricsAddress(daemon), "");
  EXPECT_THAT(daemon.process().Log(), ::testing::Not(HasSubstr("/metrics")));
}

TEST(MetricsTest, PortTakenStopsTheStartWithTheKey) {
  // Hold a port, then ask axond for it: it must refuse to start, naming the
  // key, rather than run without the metrics it was told to serve.
  UniqueFd held(::socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_TRUE(held.valid());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(held.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(held.get(), 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(held.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  TempDir dir;
  Axond daemon(dir, {.sets = {absl::StrCat("metrics.listen=127.0.0.1:", ntohs(addr.sin_port))}});
  const std::optional<int> code = daemon.process().Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value()) << "axond kept running on a taken metrics port";
  EXPECT_NE(*code, 0);
  EXPECT_THAT(daemon.process().Log(), HasSubstr("metrics.listen"));
}

class MetricsTrafficTest : public ::testing::Test, protected Pair {
 protected:
  void SetUp() override { StartPair(/*remote=*/true, {"metrics.listen=127.0.0.1:0"}); }
};

TEST_F(MetricsTrafficTest, ExportsPeersSessionsCallsAndFailures) {
  if (HasFatalFailure()) return;
  const std::string a = MetricsAddress(sending_daemon());
  const std::string b = MetricsAddress(receiving_daemon());
  ASSERT_THAT(a, HasSubstr("127.0.0.1:"));
  ASSERT_THAT(b, HasSubstr("127.0.0.1:"));
  EXPECT_THAT(sending_daemon().process().Log(), HasSubstr("http://" + a + "/metrics"));

  Server server(*receiver_, "b", ServerOptions{.concurrency = 2});
  server.Handle("echo", [](const Request& r) -> absl::StatusOr<Reply> {
    return Reply{.header = std::string(r.header), .tensors = r.tensors};
  });
  ASSERT_TRUE(server.Start().ok());
  Caller caller(*sender_, "a");
  std::vector<uint8_t> bytes(4096, 7);
  auto tensor = Tensor::Host(bytes.data(), dtype::kUInt8, {4096});
  ASSERT_TRUE(tensor.ok());
  constexpr int kCalls = 64;
  for (int i = 0; i < kCalls; ++i) {
    auto reply = caller.Call(At("b"), "echo", "x", {*tensor});
    ASSERT_TRUE(reply.ok()) << reply.status();
  }
  // An endpoint nobody bound: the request fails NOT_FOUND, counted by the
  // caller's daemon.
  auto missing = caller.Call(At("nobody"), "echo", "", {});
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();

  const Scrape scrape = Get(a, "/metrics");
  ASSERT_EQ(scrape.status, 200);
  EXPECT_EQ(scrape.content_type, "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = scrape.body;
  EXPECT_THAT(text, HasSubstr("axon_build_info{version=\""));
  EXPECT_THAT(text, HasSubstr("node=\"node-a\"} 1\n"));
  EXPECT_EQ(Value(text, "axon_peer_up{peer=\"node-b\"}"), 1);
  EXPECT_EQ(Value(text, "axon_peer_failed_dials{peer=\"node-b\"}"), 0);  // counted until up
  EXPECT_GE(Value(text, "axon_peer_messages_total{peer=\"node-b\",direction=\"sent\"}").value_or(0),
            kCalls);
  EXPECT_GE(Value(text, "axon_peer_bytes_total{peer=\"node-b\",direction=\"sent\"}").value_or(0),
            kCalls * 4096);
  EXPECT_EQ(Value(text, "axon_peer_reconnects_total{peer=\"node-b\"}"), 0);
  // One engine shard: no shard links.
  EXPECT_EQ(Value(text, "axon_peer_shard_frames_total{peer=\"node-b\"}"), 0);
  EXPECT_GE(Value(text, "axon_operations_failed_total{code=\"NOT_FOUND\"}").value_or(0), 1);
  EXPECT_GE(Value(text, "axon_sessions").value_or(0), 1);
  EXPECT_GT(Value(text, "process_open_fds").value_or(0), 0);
  EXPECT_GT(Value(text, "process_resident_memory_bytes").value_or(0), 0);
  EXPECT_GT(Value(text, "axon_ucx_thread_busy_seconds_total").value_or(0), 0);
  const std::string session = absl::StrCat("session=\"", sender_->session_id(), "\"");
  EXPECT_GE(Value(text, "axon_session_messages_total{" + session +
                            ",client=\"sender\",direction=\"sent\"}")
                .value_or(0),
            kCalls);
  EXPECT_EQ(Value(text, "axon_session_ring_entries{" + session +
                            ",client=\"sender\",ring=\"submissions\"}"),
            0);
  // One send in 16 is timed: 64 calls time at least a few.
  EXPECT_GE(Value(text, "axon_send_duration_seconds_count").value_or(0), 1);
  EXPECT_EQ(Value(text, "axon_send_duration_seconds_bucket{le=\"+Inf\"}"),
            Value(text, "axon_send_duration_seconds_count"));

  // The server's daemon: the method's calls, once its client reported them
  // (about once a second).
  const std::string calls = "axon_calls_total{endpoint=\"b\",method=\"echo\"}";
  std::string served;
  EXPECT_TRUE(WaitFor(
      [&] {
        served = Get(b, "/metrics").body;
        return Value(served, calls) == kCalls;
      },
      std::chrono::seconds(10)))
      << served;
  EXPECT_EQ(Value(served, "axon_call_duration_seconds_count{endpoint=\"b\",method=\"echo\"}"),
            kCalls);
  EXPECT_EQ(Value(served,
                  "axon_call_duration_seconds_bucket{endpoint=\"b\",method=\"echo\",le=\"+Inf\"}"),
            kCalls);
  EXPECT_GT(
      Value(served, "axon_call_duration_seconds_sum{endpoint=\"b\",method=\"echo\"}").value_or(0),
      0);
  EXPECT_EQ(Value(served, "axon_call_errors_total{endpoint=\"b\",method=\"echo\"}"), 0);
  EXPECT_GE(
      Value(served, "axon_peer_messages_total{peer=\"node-a\",direction=\"received\"}").value_or(0),
      kCalls);

  EXPECT_EQ(Get(a, "/nope").status, 404);
}

}  // namespace
}  // namespace axon::testing
