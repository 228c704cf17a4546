// Open-loop pacing: when each request of a constant-rate or Poisson arrival process is due.
//
// ArrivalSchedule yields the intended send times of one sender as offsets (nanoseconds) from the start of the run.
// cnnload's open loop splits a rate R over T sender threads: sender k gets rate R/T with its constant-rate
// arrivals shifted by k/R (together: exactly one arrival every 1/R), or an independent Poisson stream of rate R/T
// (together: a Poisson stream of rate R, since merged independent Poisson streams are Poisson). Latency is
// measured from the intended time, not from when the request actually left, so a client that falls behind
// cannot hide the delay (no coordinated omission).
//
// The Poisson stream uses its own generator (SplitMix64, inverse-CDF exponential gaps), so a seed gives the same
// schedule with every compiler and standard library.
// Thread-safety: none; one schedule per sender thread. Pure computation, no clock.
#ifndef CNNSERVE_TOOLS_CNNLOAD_PACING_H_
#define CNNSERVE_TOOLS_CNNLOAD_PACING_H_

#include <cstdint>

namespace cnnserve::cnnload {

enum class Arrivals { kConstant, kPoisson };

class ArrivalSchedule {
 public:
  // `rate_per_s` > 0: this sender's mean rate. `offset_ns`: the first constant-rate arrival (Poisson streams start
  // at 0 and draw their first gap). `seed`: Poisson generator seed.
  ArrivalSchedule(double rate_per_s, Arrivals arrivals, int64_t offset_ns = 0, uint64_t seed = 0);

  // The intended time of the next arrival (non-decreasing), and advances.
  int64_t Next();
  // The time Next() would return, without advancing.
  int64_t Peek() const { return next_ns_; }
  // Arrivals returned so far.
  int64_t count() const { return count_; }

  // Splits `total_rate_per_s` over `num_senders`: the schedule of sender `index` (see above).
  static ArrivalSchedule ForSender(double total_rate_per_s, Arrivals arrivals, int index, int num_senders,
                                   uint64_t seed);

 private:
  int64_t Compute(int64_t n);
  double UniformOpen01();  // (0, 1)

  double rate_per_s_;
  Arrivals arrivals_;
  int64_t offset_ns_;
  uint64_t rng_state_;
  double poisson_time_s_ = 0;
  int64_t count_ = 0;
  int64_t next_ns_ = 0;
};

}  // namespace cnnserve::cnnload

#endif  // CNNSERVE_TOOLS_CNNLOAD_PACING_H_
