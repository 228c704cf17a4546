#include "server/servables/servable.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

namespace cnnserve {

std::vector<ScoredClass> RunResult::Ranked(int64_t item, int k) const {
  const int64_t n = num_classes;
  const size_t row = static_cast<size_t>(item * n);
  const float* score = scores.data() + row;
  const float* tie = tie_break.empty() ? nullptr : tie_break.data() + row;
  const float* prob = probabilities.empty() ? nullptr : probabilities.data() + row;
  const int64_t count = std::clamp<int64_t>(k, 0, n);
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  // Strict weak order: numbers before NaN; higher score; higher tie-break (NaN tie-breaks last); lower index.
  const auto better = [&](int32_t a, int32_t b) {
    const bool nan_a = std::isnan(score[a]);
    const bool nan_b = std::isnan(score[b]);
    if (nan_a != nan_b) return nan_b;
    if (!nan_a && score[a] != score[b]) return score[a] > score[b];
    if (tie != nullptr) {
      const bool tnan_a = std::isnan(tie[a]);
      const bool tnan_b = std::isnan(tie[b]);
      if (tnan_a != tnan_b) return tnan_b;
      if (!tnan_a && tie[a] != tie[b]) return tie[a] > tie[b];
    }
    return a < b;
  };
  std::partial_sort(order.begin(), order.begin() + count, order.end(), better);
  std::vector<ScoredClass> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int32_t c = order[static_cast<size_t>(i)];
    out.push_back({c, score[c], prob != nullptr ? prob[c] : 0.0f});
  }
  return out;
}

int64_t SteadyNowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t WallNowMillis() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace cnnserve
