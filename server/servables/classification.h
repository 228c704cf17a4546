// Classification results from a model's output row: softmax probabilities and the top k classes.
//
// Ordering is deterministic: a higher score first, equal scores by lower class index, and NaN scores after every
// number (by index among themselves). Probabilities are the softmax over all classes, computed in double with the
// maximum subtracted (no overflow for any finite scores); a row with a NaN or +inf score gives NaN
// probabilities where they are undefined rather than crashing.
// Thread-safety: pure functions.
#ifndef CNNSERVE_SERVER_SERVABLES_CLASSIFICATION_H_
#define CNNSERVE_SERVER_SERVABLES_CLASSIFICATION_H_

#include <cstdint>
#include <span>
#include <vector>

namespace cnnserve {

struct ScoredClass {
  int32_t index = 0;
  float score = 0.0f;        // the model's output
  float probability = 0.0f;  // softmax over the whole row
};

// The default number of classes returned when a request leaves top_k at 0.
inline constexpr int kDefaultTopK = 5;

// The `k` best classes of `scores` (k is clamped to [0, scores.size()]), best first, with probabilities.
std::vector<ScoredClass> TopK(std::span<const float> scores, int k);

// Softmax of `scores` into `probabilities` (same size).
void Softmax(std::span<const float> scores, std::span<float> probabilities);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_CLASSIFICATION_H_
