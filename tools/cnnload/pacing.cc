#include "tools/cnnload/pacing.h"

#include <cmath>

#include "engine/common/units.h"

namespace cnnserve::cnnload {
namespace {

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

ArrivalSchedule::ArrivalSchedule(double rate_per_s, Arrivals arrivals, int64_t offset_ns, uint64_t seed)
    : rate_per_s_(rate_per_s > 0 ? rate_per_s : 1.0),
      arrivals_(arrivals),
      offset_ns_(offset_ns),
      rng_state_(seed ^ 0x5DEECE66DULL) {
  next_ns_ = Compute(0);
}

ArrivalSchedule ArrivalSchedule::ForSender(double total_rate_per_s, Arrivals arrivals, int index, int num_senders,
                                           uint64_t seed) {
  if (num_senders < 1) num_senders = 1;
  const double rate = total_rate_per_s / num_senders;
  const int64_t offset = static_cast<int64_t>(std::llround(index * kNanosPerSecond / total_rate_per_s));
  return ArrivalSchedule(rate, arrivals, arrivals == Arrivals::kConstant ? offset : 0,
                         seed * 1000003ULL + static_cast<uint64_t>(index));
}

double ArrivalSchedule::UniformOpen01() {
  // 53 random bits, shifted by half a step: never 0, never 1.
  return (static_cast<double>(SplitMix64(&rng_state_) >> 11) + 0.5) * 0x1.0p-53;
}

int64_t ArrivalSchedule::Compute(int64_t n) {
  if (arrivals_ == Arrivals::kConstant) {
    // From n, not by accumulation: no drift over long runs.
    return offset_ns_ + static_cast<int64_t>(std::llround(static_cast<double>(n) * kNanosPerSecond / rate_per_s_));
  }
  poisson_time_s_ += -std::log(UniformOpen01()) / rate_per_s_;  // exponential gap, mean 1/rate
  return static_cast<int64_t>(std::llround(poisson_time_s_ * kNanosPerSecond));
}

int64_t ArrivalSchedule::Next() {
  const int64_t current = next_ns_;
  ++count_;
  next_ns_ = Compute(count_);
  return current;
}

}  // namespace cnnserve::cnnload
