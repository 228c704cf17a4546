#include "tools/cnnload/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace cnnserve::cnnload {
namespace {

// The exact nearest-rank q-quantile of `sorted`: the value of rank max(1, ceil(q * n)).
int64_t ExactQuantile(const std::vector<int64_t>& sorted, double q) {
  const double scaled = q * static_cast<double>(sorted.size());
  int64_t rank = static_cast<int64_t>(std::ceil(scaled - 1e-9 * std::max(1.0, scaled)));
  rank = std::clamp<int64_t>(rank, 1, static_cast<int64_t>(sorted.size()));
  return sorted[static_cast<size_t>(rank - 1)];
}

constexpr double kQuantiles[] = {0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0};

// Records `values` and checks every quantile against the exact one within the stated bound, and the exact
// count/min/max/mean.
void ExpectWithinStatedError(std::vector<int64_t> values, const std::string& name) {
  LatencyHistogram h;
  double sum = 0;
  for (const int64_t v : values) {
    h.Record(v);
    sum += static_cast<double>(v);
  }
  std::sort(values.begin(), values.end());
  ASSERT_EQ(h.count(), static_cast<int64_t>(values.size())) << name;
  EXPECT_EQ(h.min(), values.front()) << name;
  EXPECT_EQ(h.max(), values.back()) << name;
  EXPECT_NEAR(h.mean(), sum / static_cast<double>(values.size()), 1e-9 * std::abs(sum)) << name;
  for (const double q : kQuantiles) {
    const int64_t exact = ExactQuantile(values, q);
    const int64_t got = h.ValueAtQuantile(q);
    const double bound = LatencyHistogram::kMaxRelativeError * static_cast<double>(exact);
    EXPECT_LE(std::abs(static_cast<double>(got - exact)), bound)
        << name << " q=" << q << ": histogram " << got << " vs exact " << exact;
  }
}

TEST(CnnloadHistogramTest, StatedErrorIsHalfABucketOfAtMostOneIn128) {
  EXPECT_DOUBLE_EQ(LatencyHistogram::kMaxRelativeError, 1.0 / 256);
}

TEST(CnnloadHistogramTest, BucketsTileTheRangeWithBoundedRelativeWidth) {
  int previous_index = -1;
  int64_t expected_low = 0;
  for (int index = 0; index < LatencyHistogram::NumBuckets(); ++index) {
    const int64_t low = LatencyHistogram::BucketLow(index);
    const int64_t width = LatencyHistogram::BucketWidth(index);
    ASSERT_EQ(low, expected_low) << "bucket " << index << " does not start where the previous one ended";
    if (low >= 256) {
      ASSERT_LE(static_cast<double>(width) / static_cast<double>(low), 1.0 / 128) << index;
    }
    ASSERT_EQ(LatencyHistogram::BucketIndex(low), index);
    ASSERT_EQ(LatencyHistogram::BucketIndex(low + width - 1), index);
    ASSERT_GT(index, previous_index);
    previous_index = index;
    expected_low = low + width;
  }
  EXPECT_EQ(expected_low, LatencyHistogram::kMaxValue + 1);
}

TEST(CnnloadHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int64_t v = 0; v < 256; ++v) h.Record(v);
  for (int64_t v = 0; v < 256; ++v) {
    // rank v + 1 of 256 values 0..255
    EXPECT_EQ(h.ValueAtQuantile(static_cast<double>(v + 1) / 256), v);
  }
}

TEST(CnnloadHistogramTest, EveryIntegerOnceGivesTheRankWithinTheBound) {
  // 1 .. 2,000,000 once each: the nearest-rank q-quantile is ceil(q * n).
  constexpr int64_t kN = 2'000'000;
  LatencyHistogram h;
  for (int64_t v = 1; v <= kN; ++v) h.Record(v);
  for (const double q : kQuantiles) {
    const int64_t exact = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * kN - 1e-9 * q * kN)));
    EXPECT_LE(std::abs(static_cast<double>(h.ValueAtQuantile(q) - exact)),
              LatencyHistogram::kMaxRelativeError * static_cast<double>(exact))
        << "q=" << q;
  }
}

TEST(CnnloadHistogramTest, KnownDistributionsWithinTheStatedError) {
  constexpr int kSamples = 200'000;
  std::mt19937_64 rng(12345);
  {
    std::uniform_int_distribution<int64_t> d(1, 50'000'000);  // 1 ns .. 50 ms
    std::vector<int64_t> v(kSamples);
    for (int64_t& x : v) x = d(rng);
    ExpectWithinStatedError(v, "uniform");
  }
  {
    std::exponential_distribution<double> d(1.0 / 2e6);  // mean 2 ms in ns
    std::vector<int64_t> v(kSamples);
    for (int64_t& x : v) x = static_cast<int64_t>(d(rng));
    ExpectWithinStatedError(v, "exponential");
  }
  {
    std::lognormal_distribution<double> d(std::log(1e6), 1.5);  // median 1 ms, heavy tail
    std::vector<int64_t> v(kSamples);
    for (int64_t& x : v) x = static_cast<int64_t>(d(rng));
    ExpectWithinStatedError(v, "lognormal");
  }
  {
    // Bimodal: 99% around 300 us, 1% around 80 ms (a p99 that lands between the modes).
    std::normal_distribution<double> fast(300e3, 20e3);
    std::normal_distribution<double> slow(80e6, 5e6);
    std::bernoulli_distribution is_slow(0.01);
    std::vector<int64_t> v(kSamples);
    for (int64_t& x : v) x = std::max<int64_t>(0, static_cast<int64_t>(is_slow(rng) ? slow(rng) : fast(rng)));
    ExpectWithinStatedError(v, "bimodal");
  }
  ExpectWithinStatedError(std::vector<int64_t>(1000, 123'456'789), "constant");
  ExpectWithinStatedError({7}, "single");
}

TEST(CnnloadHistogramTest, AnalyticQuantilesOfALargeExponentialSample) {
  // Exponential with mean 1 ms: the q-quantile is -ln(1 - q) ms. With 10^6 samples the sampling error is well
  // below 1% at these quantiles; the histogram adds at most 0.39%.
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> d(1.0 / 1e6);
  LatencyHistogram h;
  for (int i = 0; i < 1'000'000; ++i) h.Record(static_cast<int64_t>(d(rng)));
  for (const double q : {0.5, 0.9, 0.99}) {
    const double expected = -std::log(1 - q) * 1e6;
    EXPECT_NEAR(static_cast<double>(h.ValueAtQuantile(q)), expected, 0.02 * expected) << "q=" << q;
  }
  EXPECT_NEAR(h.mean(), 1e6, 0.01e6);
}

TEST(CnnloadHistogramTest, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> d(std::log(5e5), 1.0);
  LatencyHistogram all;
  LatencyHistogram parts[3];
  for (int i = 0; i < 30'000; ++i) {
    const int64_t v = static_cast<int64_t>(d(rng));
    all.Record(v);
    parts[i % 3].Record(v);
  }
  LatencyHistogram merged;
  for (const LatencyHistogram& p : parts) merged.Merge(p);
  merged.Merge(LatencyHistogram());  // empty: no change
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_NEAR(merged.mean(), all.mean(), 1e-6 * all.mean());
  for (const double q : kQuantiles) EXPECT_EQ(merged.ValueAtQuantile(q), all.ValueAtQuantile(q)) << q;
}

TEST(CnnloadHistogramTest, EmptyClampedAndReset) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.mean(), 0);
  h.Record(-5);
  h.Record(LatencyHistogram::kMaxValue + 12345);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), LatencyHistogram::kMaxValue);
  EXPECT_EQ(h.ValueAtQuantile(0), 0);
  EXPECT_EQ(h.ValueAtQuantile(1), LatencyHistogram::kMaxValue);
  EXPECT_EQ(h.ValueAtQuantile(-1), 0);  // q clamped
  EXPECT_EQ(h.ValueAtQuantile(2), LatencyHistogram::kMaxValue);
  h.Reset();
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 0);
}

}  // namespace
}  // namespace cnnserve::cnnload
