// The Prometheus text exposition format (version 0.0.4), written family by
// family: a HELP and a TYPE line, then the family's samples. Label values
// are escaped; names are the caller's constants and are checked in debug
// builds only. No client library for this format is packaged by Debian, and
// what axond exports is a snapshot rendered on each scrape, so this is all
// the format it needs.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/latency_histogram.h"

namespace axon::daemon::metrics {

using Labels = std::vector<std::pair<absl::string_view, absl::string_view>>;

enum class Type { kCounter, kGauge, kHistogram };

class Exposition {
 public:
  // Starts family `name`. Counters end in _total, by convention and by
  // Prometheus's own checks; the caller names them so.
  void Family(absl::string_view name, Type type, absl::string_view help);
  // One sample of the current family (`suffix` for _bucket, _sum, _count).
  void Sample(const Labels& labels, uint64_t value, absl::string_view suffix = "");
  void Sample(const Labels& labels, double value, absl::string_view suffix = "");
  // A histogram sample set of the current family, in seconds, from
  // cumulative counts below 2^k microseconds (LatencyHistogram's
  // PowerOfTwoCounts, or a client's report of them), the total count and
  // the sum in microseconds.
  void Histogram(const Labels& labels, const std::vector<uint64_t>& below_pow2_us, uint64_t count,
                 double sum_micros);
  void Histogram(const Labels& labels, const LatencyHistogram& histogram);

  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Line(const Labels& labels, absl::string_view suffix, absl::string_view extra_label,
            absl::string_view extra_value, absl::string_view value);

  std::string out_;
  std::string family_;
};

// The content type of the format, for the HTTP reply.
inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace axon::daemon::metrics
