#include "server/servables/classification.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace cnnserve {
namespace {

// True when class a ranks before class b (see the header).
bool RanksBefore(float score_a, int32_t a, float score_b, int32_t b) {
  const bool nan_a = std::isnan(score_a);
  const bool nan_b = std::isnan(score_b);
  if (nan_a != nan_b) return nan_b;
  if (!nan_a && score_a != score_b) return score_a > score_b;
  return a < b;
}

struct SoftmaxTerms {
  double max = 0.0;
  double sum = 0.0;
};

SoftmaxTerms ComputeSoftmaxTerms(std::span<const float> scores) {
  SoftmaxTerms terms;
  terms.max = -std::numeric_limits<double>::infinity();
  for (float s : scores) terms.max = std::max(terms.max, static_cast<double>(s));  // NaN is skipped by max
  for (float s : scores) terms.sum += std::exp(static_cast<double>(s) - terms.max);
  return terms;
}

float Probability(float score, const SoftmaxTerms& terms) {
  return static_cast<float>(std::exp(static_cast<double>(score) - terms.max) / terms.sum);
}

}  // namespace

std::vector<ScoredClass> TopK(std::span<const float> scores, int k) {
  const size_t count = std::min(static_cast<size_t>(std::max(k, 0)), scores.size());
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(count), order.end(),
                    [&](int32_t a, int32_t b) { return RanksBefore(scores[a], a, scores[b], b); });
  const SoftmaxTerms terms = ComputeSoftmaxTerms(scores);
  std::vector<ScoredClass> top(count);
  for (size_t i = 0; i < count; ++i) {
    top[i].index = order[i];
    top[i].score = scores[order[i]];
    top[i].probability = Probability(top[i].score, terms);
  }
  return top;
}

void Softmax(std::span<const float> scores, std::span<float> probabilities) {
  const SoftmaxTerms terms = ComputeSoftmaxTerms(scores);
  const size_t n = std::min(scores.size(), probabilities.size());
  for (size_t i = 0; i < n; ++i) probabilities[i] = Probability(scores[i], terms);
}

}  // namespace cnnserve
