// Latencies in buckets of a quarter power of two of microseconds: constant
// memory whatever the count, p50/p99 within 19% (a bucket's width), and
// exact counts at every power of two, which is what Prometheus histograms
// (cumulative counts at fixed upper bounds) are made of.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace axon {

class LatencyHistogram {
 public:
  // Powers of two of microseconds that PowerOfTwoCounts reports: 2 us to
  // 2^kPowers us (about 34 s). Past the last, only the total count knows.
  static constexpr int kPowers = 25;

  void Add(double micros) {
    const double x = micros < 1 ? 1 : micros;  // below 1 us: counted as 1 us
    const int bucket = static_cast<int>(std::log2(x) * 4);
    ++buckets_[static_cast<size_t>(bucket < kBuckets ? bucket : kBuckets - 1)];
    ++count_;
    sum_micros_ += micros < 0 ? 0 : micros;
  }
  // The upper edge of the bucket holding quantile `q` (0..1); 0 when empty.
  double Quantile(double q) const {
    if (count_ == 0) return 0;
    const uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += buckets_[static_cast<size_t>(i)];
      if (seen >= rank && seen > 0) return std::exp2((i + 1) / 4.0);
    }
    return std::exp2(kBuckets / 4.0);
  }
  // Entry k - 1 (k = 1..kPowers): the values below 2^k us, cumulative.
  std::array<uint64_t, kPowers> PowerOfTwoCounts() const {
    std::array<uint64_t, kPowers> out{};
    uint64_t seen = 0;
    for (int k = 1; k <= kPowers; ++k) {
      for (int i = 4 * (k - 1); i < 4 * k; ++i) seen += buckets_[static_cast<size_t>(i)];
      out[static_cast<size_t>(k - 1)] = seen;
    }
    return out;
  }
  // Adds what `other` counted (several threads' histograms, summed).
  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    sum_micros_ += other.sum_micros_;
  }
  uint64_t count() const { return count_; }
  double sum_micros() const { return sum_micros_; }

 private:
  static constexpr int kBuckets = 4 * 40;  // up to 2^40 us: 12 days
  static_assert(kPowers * 4 <= kBuckets);
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  double sum_micros_ = 0;
};

}  // namespace axon
