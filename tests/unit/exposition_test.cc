// The Prometheus text writer and the latency histogram under it: exact
// counters, escaping, and histogram buckets that are cumulative and in
// seconds. A real Prometheus parses the whole output in
// python/tests/test_prometheus.py.
#include "daemon/metrics/exposition.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace axon::daemon::metrics {
namespace {

using ::testing::HasSubstr;

TEST(LatencyHistogramTest, PowerOfTwoCountsAreExactAndCumulative) {
  LatencyHistogram h;
  for (double us : {0.2, 1.0, 1.9, 2.0, 3.99, 4.0, 1000.0, 1e9}) h.Add(us);
  const auto counts = h.PowerOfTwoCounts();
  EXPECT_EQ(counts[0], 3u);      // below 2 us: 0.2, 1.0, 1.9
  EXPECT_EQ(counts[1], 5u);      // below 4 us: and 2.0, 3.99
  EXPECT_EQ(counts[2], 6u);      // below 8 us: and 4.0
  EXPECT_EQ(counts[9], 7u);      // below 1024 us: and 1000
  EXPECT_EQ(counts.back(), 7u);  // 1e9 us is past the last bound (2^25 us)
  EXPECT_EQ(h.count(), 8u);
  EXPECT_DOUBLE_EQ(h.sum_micros(), 0.2 + 1.0 + 1.9 + 2.0 + 3.99 + 4.0 + 1000.0 + 1e9);
  for (size_t i = 1; i < counts.size(); ++i) EXPECT_GE(counts[i], counts[i - 1]);
}

TEST(ExpositionTest, CountersAreExactIntegersWithHelpAndType) {
  Exposition out;
  out.Family("axon_bytes_total", Type::kCounter, "Bytes.\nSecond line \\ here.");
  out.Sample({{"peer", "node-b"}, {"direction", "sent"}}, uint64_t{12345678901234567});
  out.Sample({}, uint64_t{0});
  EXPECT_EQ(out.text(),
            "# HELP axon_bytes_total Bytes.\\nSecond line \\\\ here.\n"
            "# TYPE axon_bytes_total counter\n"
            "axon_bytes_total{peer=\"node-b\",direction=\"sent\"} 12345678901234567\n"
            "axon_bytes_total 0\n");
}

TEST(ExpositionTest, LabelValuesAreEscaped) {
  Exposition out;
  out.Family("axon_x", Type::kGauge, "x");
  out.Sample({{"client", "a\"b\\c\nd"}}, 1.5);
  EXPECT_THAT(out.text(), HasSubstr("axon_x{client=\"a\\\"b\\\\c\\nd\"} 1.5\n"));
}

TEST(ExpositionTest, GaugesKeepFractionsAndSpecialValues) {
  Exposition out;
  out.Family("axon_g", Type::kGauge, "g");
  out.Sample({}, 0.000123);
  out.Sample({{"k", "inf"}}, std::numeric_limits<double>::infinity());
  EXPECT_THAT(out.text(), HasSubstr("axon_g 0.000123\n"));
  EXPECT_THAT(out.text(), HasSubstr("axon_g{k=\"inf\"} +Inf\n"));
}

TEST(ExpositionTest, HistogramBucketsAreCumulativeSecondsEndingInInf) {
  LatencyHistogram h;
  h.Add(1.5);   // < 2 us
  h.Add(3);     // < 4 us
  h.Add(3000);  // < 4096 us
  Exposition out;
  out.Family("axon_d_seconds", Type::kHistogram, "d");
  out.Histogram({{"method", "echo"}}, h);
  const std::string& t = out.text();
  EXPECT_THAT(t, HasSubstr("# TYPE axon_d_seconds histogram\n"));
  EXPECT_THAT(t, HasSubstr("axon_d_seconds_bucket{method=\"echo\",le=\"2e-06\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("axon_d_seconds_bucket{method=\"echo\",le=\"4e-06\"} 2\n"));
  EXPECT_THAT(t, HasSubstr("axon_d_seconds_bucket{method=\"echo\",le=\"0.002048\"} 2\n"));
  EXPECT_THAT(t, HasSubstr("axon_d_seconds_bucket{method=\"echo\",le=\"0.004096\"} 3\n"));
  EXPECT_THAT(t, HasSubstr("axon_d_seconds_bucket{method=\"echo\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(t, HasSubstr("axon_d_seconds_sum{method=\"echo\"} 0.0030045\n"));
  EXPECT_THAT(t, HasSubstr("axon_d_seconds_count{method=\"echo\"} 3\n"));
}

TEST(ExpositionTest, ReportedBucketsNeverExceedTheCount) {
  // A client's report is read from another process: a bucket above the
  // count would make a histogram Prometheus rejects.
  Exposition out;
  out.Family("axon_c_seconds", Type::kHistogram, "c");
  out.Histogram({}, {1, 5, 9}, 4, 10);
  EXPECT_THAT(out.text(), HasSubstr("axon_c_seconds_bucket{le=\"4e-06\"} 4\n"));
  EXPECT_THAT(out.text(), HasSubstr("axon_c_seconds_bucket{le=\"8e-06\"} 4\n"));
  EXPECT_THAT(out.text(), HasSubstr("axon_c_seconds_bucket{le=\"+Inf\"} 4\n"));
}

}  // namespace
}  // namespace axon::daemon::metrics
