#include "server/servables/classification.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace cnnserve {
namespace {

std::vector<int32_t> Indices(const std::vector<ScoredClass>& top) {
  std::vector<int32_t> out;
  for (const ScoredClass& c : top) out.push_back(c.index);
  return out;
}

TEST(ClassificationTest, TopKIsBestFirstWithLowerIndexOnTies) {
  const std::vector<float> scores = {0.5f, 2.0f, -1.0f, 2.0f, 0.5f, 3.0f};
  EXPECT_EQ(Indices(TopK(scores, 6)), (std::vector<int32_t>{5, 1, 3, 0, 4, 2}));
  EXPECT_EQ(Indices(TopK(scores, 3)), (std::vector<int32_t>{5, 1, 3}));
  EXPECT_EQ(Indices(TopK(scores, 1)), (std::vector<int32_t>{5}));
  EXPECT_TRUE(TopK(scores, 0).empty());
  EXPECT_TRUE(TopK(scores, -3).empty());
  EXPECT_EQ(TopK(scores, 100).size(), scores.size());  // clamped
  const std::vector<ScoredClass> top = TopK(scores, 2);
  EXPECT_EQ(top[0].score, 3.0f);
  EXPECT_EQ(top[1].score, 2.0f);
  const std::vector<float> all_equal(7, 1.25f);
  EXPECT_EQ(Indices(TopK(all_equal, 4)), (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(ClassificationTest, ProbabilitiesAreTheSoftmax) {
  const std::vector<float> scores = {1.0f, 2.0f, 3.0f, -4.0f};
  double sum = 0;
  for (float s : scores) sum += std::exp(static_cast<double>(s));
  const std::vector<ScoredClass> top = TopK(scores, 4);
  double total = 0;
  for (const ScoredClass& c : top) {
    EXPECT_NEAR(c.probability, std::exp(static_cast<double>(c.score)) / sum, 1e-7);
    total += c.probability;
  }
  EXPECT_NEAR(total, 1.0, 1e-6);
  std::vector<float> probabilities(scores.size());
  Softmax(scores, probabilities);
  for (const ScoredClass& c : top) EXPECT_FLOAT_EQ(probabilities[static_cast<size_t>(c.index)], c.probability);
}

TEST(ClassificationTest, LargeScoresDoNotOverflow) {
  const std::vector<float> scores = {1000.0f, 999.0f, -1000.0f};
  const std::vector<ScoredClass> top = TopK(scores, 3);
  EXPECT_NEAR(top[0].probability, 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(top[1].probability, std::exp(-1.0) / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_EQ(top[2].probability, 0.0f);
}

TEST(ClassificationTest, NanScoresRankLast) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> scores = {nan, 1.0f, nan, -2.0f};
  EXPECT_EQ(Indices(TopK(scores, 4)), (std::vector<int32_t>{1, 3, 0, 2}));
}

}  // namespace
}  // namespace cnnserve
