#include "tools/cnnload/pacing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace cnnserve::cnnload {
namespace {

constexpr double kNanosPerSecond = 1e9;

TEST(CnnloadPacingTest, ConstantRateIsExactAndDoesNotDrift) {
  ArrivalSchedule s(3000, Arrivals::kConstant);  // 1/3 ms: not a whole number of nanoseconds
  EXPECT_EQ(s.Peek(), 0);
  for (int64_t i = 0; i < 1'000'000; ++i) {
    const int64_t t = s.Next();
    ASSERT_EQ(t, std::llround(static_cast<double>(i) * kNanosPerSecond / 3000)) << "arrival " << i;
  }
  EXPECT_EQ(s.count(), 1'000'000);
  // Arrival 3,000,000 would be at exactly 1000 s; after 10^6 arrivals we are at 333.333... s, not drifted.
  EXPECT_EQ(s.Peek(), std::llround(1'000'000 * kNanosPerSecond / 3000));
}

TEST(CnnloadPacingTest, PeekDoesNotAdvance) {
  ArrivalSchedule s(100, Arrivals::kPoisson, 0, 42);
  const int64_t peeked = s.Peek();
  EXPECT_EQ(s.Peek(), peeked);
  EXPECT_EQ(s.Next(), peeked);
  EXPECT_EQ(s.count(), 1);
  EXPECT_GT(s.Peek(), peeked);
}

TEST(CnnloadPacingTest, ConstantRateSplitOverSendersInterleavesExactly) {
  // 4 senders at 1000/s in total: together one arrival every millisecond, none twice.
  constexpr int kSenders = 4;
  std::vector<int64_t> all;
  for (int k = 0; k < kSenders; ++k) {
    ArrivalSchedule s = ArrivalSchedule::ForSender(1000, Arrivals::kConstant, k, kSenders, 0);
    for (int i = 0; i < 250; ++i) all.push_back(s.Next());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<int64_t>(i) * 1'000'000) << i;
}

struct GapStats {
  double mean_s = 0;
  double cv = 0;  // standard deviation / mean
  double ks = 0;  // Kolmogorov-Smirnov distance to the exponential distribution of the same rate
};

GapStats MeasureGaps(ArrivalSchedule& s, int n, double rate) {
  std::vector<double> gaps;
  int64_t previous = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t t = s.Next();
    EXPECT_GE(t, previous) << "arrival times must not decrease";
    gaps.push_back(static_cast<double>(t - previous) / kNanosPerSecond);
    previous = t;
  }
  GapStats stats;
  double sum = 0;
  double sum2 = 0;
  for (const double g : gaps) {
    sum += g;
    sum2 += g * g;
  }
  stats.mean_s = sum / n;
  stats.cv = std::sqrt(sum2 / n - stats.mean_s * stats.mean_s) / stats.mean_s;
  std::sort(gaps.begin(), gaps.end());
  for (int i = 0; i < n; ++i) {
    const double cdf = 1 - std::exp(-rate * gaps[static_cast<size_t>(i)]);
    stats.ks = std::max(
        {stats.ks, std::abs(cdf - static_cast<double>(i) / n), std::abs(cdf - static_cast<double>(i + 1) / n)});
  }
  return stats;
}

TEST(CnnloadPacingTest, PoissonGapsAreExponentialWithTheRequestedRate) {
  constexpr int kN = 200'000;
  constexpr double kRate = 2500;
  ArrivalSchedule s(kRate, Arrivals::kPoisson, 0, 1);
  const GapStats stats = MeasureGaps(s, kN, kRate);
  // Mean gap 1/rate: standard error 1/(rate sqrt(n)) = 0.22%; allow 5 standard errors.
  EXPECT_NEAR(stats.mean_s * kRate, 1.0, 5 / std::sqrt(kN));
  // Exponential: coefficient of variation 1.
  EXPECT_NEAR(stats.cv, 1.0, 0.02);
  // Kolmogorov-Smirnov at the 0.1% level: D < 1.95 / sqrt(n) (gaps are rounded to 1 ns: negligible here).
  EXPECT_LT(stats.ks, 1.95 / std::sqrt(kN));
}

TEST(CnnloadPacingTest, PoissonCountsPerSecondHaveMeanAndVarianceOfTheRate) {
  // Arrivals per 1-s interval of a Poisson process of rate R: mean R, variance R.
  constexpr double kRate = 200;
  constexpr int kSeconds = 2000;
  ArrivalSchedule s(kRate, Arrivals::kPoisson, 0, 99);
  std::vector<int> counts(kSeconds, 0);
  while (true) {
    const int64_t t = s.Next();
    const int64_t second = t / static_cast<int64_t>(kNanosPerSecond);
    if (second >= kSeconds) break;
    ++counts[static_cast<size_t>(second)];
  }
  double sum = 0;
  double sum2 = 0;
  for (const int c : counts) {
    sum += c;
    sum2 += static_cast<double>(c) * c;
  }
  const double mean = sum / kSeconds;
  const double variance = sum2 / kSeconds - mean * mean;
  EXPECT_NEAR(mean, kRate, 5 * std::sqrt(kRate / kSeconds));  // 5 standard errors
  EXPECT_NEAR(variance / kRate, 1.0, 0.15);
}

TEST(CnnloadPacingTest, PoissonIsReproducibleFromItsSeed) {
  ArrivalSchedule a(1000, Arrivals::kPoisson, 0, 5);
  ArrivalSchedule b(1000, Arrivals::kPoisson, 0, 5);
  ArrivalSchedule c(1000, Arrivals::kPoisson, 0, 6);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    const int64_t ta = a.Next();
    ASSERT_EQ(ta, b.Next());
    differs |= ta != c.Next();
  }
  EXPECT_TRUE(differs);
}

TEST(CnnloadPacingTest, PoissonSendersTogetherHaveTheTotalRate) {
  // 3 independent senders at 3000/s in total: about 3000 arrivals per second together, each stream different.
  constexpr int kSenders = 3;
  constexpr double kRate = 3000;
  constexpr double kSeconds = 20;
  int64_t total = 0;
  std::vector<int64_t> firsts;
  for (int k = 0; k < kSenders; ++k) {
    ArrivalSchedule s = ArrivalSchedule::ForSender(kRate, Arrivals::kPoisson, k, kSenders, 11);
    firsts.push_back(s.Peek());
    while (s.Next() < static_cast<int64_t>(kSeconds * kNanosPerSecond)) ++total;
  }
  const double expected = kRate * kSeconds;
  EXPECT_NEAR(static_cast<double>(total), expected, 5 * std::sqrt(expected));
  EXPECT_NE(firsts[0], firsts[1]);
  EXPECT_NE(firsts[1], firsts[2]);
}

}  // namespace
}  // namespace cnnserve::cnnload
