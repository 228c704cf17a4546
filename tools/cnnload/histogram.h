// LatencyHistogram: a log-bucketed histogram of non-negative integer values (cnnload records nanoseconds) whose
// quantiles have a bounded relative error, in the manner of HdrHistogram.
//
// Values below 2^(kSubBucketBits + 1) = 256 have a bucket each (exact). Above that, every power of two [2^e,
// 2^(e+1)) is split into 2^kSubBucketBits = 128 equal buckets, so a bucket is at most 1/128 of its lower bound
// wide. ValueAtQuantile() returns the middle of the bucket holding the sample of the requested rank (clamped to
// the exact min and max), which is therefore within kMaxRelativeError = 1/256 (0.39%) of that sample. Values
// above kMaxValue (2^48 ns, 78 hours) are recorded as kMaxValue. min, max, count and mean are exact.
// Memory: 5,376 64-bit counters (43 KiB), whatever the number of values.
//
// Thread-safety: none; a histogram belongs to one thread (cnnload keeps one per worker thread and merges them).
#ifndef CNNSERVE_TOOLS_CNNLOAD_HISTOGRAM_H_
#define CNNSERVE_TOOLS_CNNLOAD_HISTOGRAM_H_

#include <cstdint>
#include <vector>

namespace cnnserve::cnnload {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr int kMaxExponent = 47;  // values up to 2^48 - 1
  static constexpr int64_t kMaxValue = (int64_t{1} << (kMaxExponent + 1)) - 1;
  // Bound of |ValueAtQuantile(q) - exact nearest-rank q-quantile| / exact quantile.
  static constexpr double kMaxRelativeError = 1.0 / (1 << (kSubBucketBits + 1));

  LatencyHistogram();

  // Adds one value; negative values count as 0, values above kMaxValue as kMaxValue.
  void Record(int64_t value);
  // Adds every value of `other`.
  void Merge(const LatencyHistogram& other);
  void Reset();

  int64_t count() const { return count_; }
  // Exact extremes and mean of the recorded values (0 when empty).
  int64_t min() const { return count_ == 0 ? 0 : min_; }
  int64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_); }

  // The q-quantile (q in [0, 1], clamped) by nearest rank: the value of rank max(1, ceil(q * count)) in ascending
  // order, within kMaxRelativeError (see above); the first and last ranks are the exact min and max. 0 when
  // empty.
  int64_t ValueAtQuantile(double q) const;

  // Bucket arithmetic, exposed for tests.
  static int BucketIndex(int64_t value);
  static int64_t BucketLow(int index);    // smallest value of the bucket
  static int64_t BucketWidth(int index);  // number of integer values in it
  static int NumBuckets();

 private:
  std::vector<int64_t> counts_;
  int64_t count_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  double sum_ = 0;
};

}  // namespace cnnserve::cnnload

#endif  // CNNSERVE_TOOLS_CNNLOAD_HISTOGRAM_H_
