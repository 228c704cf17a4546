#include "tools/cnnload/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace cnnserve::cnnload {
namespace {

constexpr int kSubBuckets = 1 << LatencyHistogram::kSubBucketBits;  // per power of two
constexpr int kExactLimit = 2 * kSubBuckets;                        // values below have their own bucket

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(static_cast<size_t>(NumBuckets()), 0) {}

int LatencyHistogram::NumBuckets() { return kExactLimit + (kMaxExponent - kSubBucketBits) * kSubBuckets; }

int LatencyHistogram::BucketIndex(int64_t value) {
  value = std::clamp<int64_t>(value, 0, kMaxValue);
  if (value < kExactLimit) return static_cast<int>(value);
  const int exponent = std::bit_width(static_cast<uint64_t>(value)) - 1;  // >= kSubBucketBits + 1
  const int shift = exponent - kSubBucketBits;
  const int sub = static_cast<int>(value >> shift) - kSubBuckets;  // [0, kSubBuckets)
  return kExactLimit + (shift - 1) * kSubBuckets + sub;
}

int64_t LatencyHistogram::BucketLow(int index) {
  if (index < kExactLimit) return index;
  const int shift = (index - kExactLimit) / kSubBuckets + 1;
  const int sub = (index - kExactLimit) % kSubBuckets;
  return static_cast<int64_t>(kSubBuckets + sub) << shift;
}

int64_t LatencyHistogram::BucketWidth(int index) {
  if (index < kExactLimit) return 1;
  return int64_t{1} << ((index - kExactLimit) / kSubBuckets + 1);
}

void LatencyHistogram::Record(int64_t value) {
  value = std::clamp<int64_t>(value, 0, kMaxValue);
  ++counts_[static_cast<size_t>(BucketIndex(value))];
  if (count_ == 0 || value < min_) min_ = value;
  max_ = std::max(max_, value);
  sum_ += static_cast<double>(value);
  ++count_;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
  count_ += other.count_;
}

void LatencyHistogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = 0;
  max_ = 0;
  sum_ = 0;
}

int64_t LatencyHistogram::ValueAtQuantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank, 1-based. The small epsilon keeps q * count that is an integer in exact arithmetic (0.99 * 100)
  // from rounding up to the next rank.
  const double scaled = q * static_cast<double>(count_);
  int64_t rank = static_cast<int64_t>(std::ceil(scaled - 1e-9 * std::max(1.0, scaled)));
  rank = std::clamp<int64_t>(rank, 1, count_);
  if (rank == 1) return min_;  // the extremes are known exactly
  if (rank == count_) return max_;
  int64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const int index = static_cast<int>(i);
      const int64_t middle = BucketLow(index) + (BucketWidth(index) - 1) / 2;
      return std::clamp(middle, min_, max_);
    }
  }
  return max_;
}

}  // namespace cnnserve::cnnload
