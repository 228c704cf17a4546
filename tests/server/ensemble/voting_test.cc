// Ensemble voting (server/ensemble/voting.h): one table row per strategy rule and corner case, with expectations
// computed by hand (the comments show the arithmetic), then properties over generated rows.
#include "server/ensemble/voting.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

namespace cnnserve {
namespace {

using Config = v1::EnsembleConfig;
constexpr auto kHard = Config::HARD_MAJORITY;
constexpr auto kSoft = Config::SOFT_MEAN;
constexpr auto kWeighted = Config::WEIGHTED_SOFT;
constexpr auto kGeometric = Config::GEOMETRIC_MEAN;
constexpr auto kBorda = Config::BORDA;
constexpr auto kMaxConfidence = Config::MAX_CONFIDENCE;
constexpr EnsembleStrategy kAllStrategies[] = {kHard, kSoft, kWeighted, kGeometric, kBorda, kMaxConfidence};

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
const double kLogFloor = std::log(kProbabilityFloor);

// One member of a row: its answer (owned here; MemberVote views it).
struct Member {
  bool answered = true;
  float weight = 1.0f;
  std::vector<float> row;
};
Member A(std::vector<float> row) { return Member{true, 1.0f, std::move(row)}; }
Member W(float weight, std::vector<float> row) { return Member{true, weight, std::move(row)}; }
// Did not answer; its row (if any) must be ignored, whatever its size.
Member Missing(std::vector<float> row = {}, float weight = 1.0f) { return Member{false, weight, std::move(row)}; }

std::vector<MemberVote> Votes(const std::vector<Member>& members) {
  std::vector<MemberVote> votes;
  for (const Member& m : members) votes.push_back(MemberVote{m.answered, m.weight, m.row});
  return votes;
}

struct Expect {
  StatusCode code = StatusCode::kOk;
  std::string message;  // substring of the error message
  std::vector<double> scores;
  std::vector<double> probabilities;
  std::vector<double> tie_break;
  std::vector<int32_t> order;  // RankVote(vote, num_classes)
  double agreement = 0.0;
  int32_t answered = 0;
  std::vector<int32_t> invalid = {};
  int32_t chosen = -1;
};
Expect Ok(std::vector<double> scores, std::vector<double> probabilities, std::vector<double> tie_break,
          std::vector<int32_t> order, double agreement, int32_t answered, std::vector<int32_t> invalid = {},
          int32_t chosen = -1) {
  Expect expect;
  expect.scores = std::move(scores);
  expect.probabilities = std::move(probabilities);
  expect.tie_break = std::move(tie_break);
  expect.order = std::move(order);
  expect.agreement = agreement;
  expect.answered = answered;
  expect.invalid = std::move(invalid);
  expect.chosen = chosen;
  return expect;
}
Expect Error(StatusCode code, std::string message) {
  Expect expect;
  expect.code = code;
  expect.message = std::move(message);
  return expect;
}

struct Row {
  std::string name;
  EnsembleStrategy strategy;
  std::vector<Member> members;
  int64_t num_classes;
  int32_t quorum;
  Expect expect;
};
std::ostream& operator<<(std::ostream& os, const Row& row) { return os << row.name; }

std::vector<Row> Rows() {
  std::vector<Row> rows;
  auto add = [&rows](std::string name, EnsembleStrategy strategy, std::vector<Member> members, int64_t classes,
                     int32_t quorum, Expect expect) {
    rows.push_back(Row{std::move(name), strategy, std::move(members), classes, quorum, std::move(expect)});
  };
  const double third = 1.0 / 3.0;

  // --- HARD_MAJORITY: one vote per member's top-1; probability = vote share.
  add("HardMajorityTwoOfThree", kHard, {A({0.5, 0.25, 0.25}), A({0.25, 0.5, 0.25}), A({0.625, 0.25, 0.125})}, 3, 0,
      Ok({2, 1, 0}, {2 * third, third, 0}, {1.375, 1.0, 0.625}, {0, 1, 2}, 2 * third, 3));
  add("HardMajorityVoteTieBrokenBySummedProbability", kHard, {A({0.5, 0.375, 0.125}), A({0.125, 0.75, 0.125})}, 3,
      0, Ok({1, 1, 0}, {0.5, 0.5, 0}, {0.625, 1.125, 0.25}, {1, 0, 2}, 0.5, 2));
  add("HardMajorityFullTieBrokenByLowerIndex", kHard, {A({0.25, 0.75, 0}), A({0.75, 0.25, 0})}, 3, 0,
      Ok({1, 1, 0}, {0.5, 0.5, 0}, {1, 1, 0}, {0, 1, 2}, 0.5, 2));
  // The member's own top-1 among equal probabilities is the lower index (class 1, not 2); the classes without
  // votes are then ordered by summed probability.
  add("HardMajorityMemberTieVotesForLowerIndex", kHard, {A({0.25, 0.375, 0.375})}, 3, 0,
      Ok({0, 1, 0}, {0, 1, 0}, {0.25, 0.375, 0.375}, {1, 2, 0}, 1.0, 1));
  add("HardMajorityIgnoresWeights", kHard, {W(5, {0.75, 0.25}), A({0.25, 0.75}), A({0.375, 0.625})}, 2, 0,
      Ok({1, 2}, {third, 2 * third}, {1.375, 1.625}, {1, 0}, 2 * third, 3));

  // --- SOFT_MEAN: mean probability.
  // mean = ([0.5, 0.25, 0.25] + [0.125, 0.5, 0.375]) / 2; classes 0 and 2 tie on score and on sum: lower index.
  add("SoftMeanTwoMembers", kSoft, {A({0.5, 0.25, 0.25}), A({0.125, 0.5, 0.375})}, 3, 0,
      Ok({0.3125, 0.375, 0.3125}, {0.3125, 0.375, 0.3125}, {0.625, 0.75, 0.625}, {1, 0, 2}, 0.5, 2));
  add("SoftMeanIgnoresWeights", kSoft, {W(3, {0.75, 0.25}), W(1, {0.25, 0.75})}, 2, 0,
      Ok({0.5, 0.5}, {0.5, 0.5}, {1, 1}, {0, 1}, 0.5, 2));
  // Row [2, 6] is scaled to [0.25, 0.75] first: mean = ([0.25, 0.75] + [0.5, 0.5]) / 2.
  add("SoftMeanScalesRowsToSumOne", kSoft, {A({2, 6}), A({0.5, 0.5})}, 2, 0,
      Ok({0.375, 0.625}, {0.375, 0.625}, {0.75, 1.25}, {1, 0}, 0.5, 2));

  // --- WEIGHTED_SOFT: weighted mean over the answering members.
  // (3 * [0.75, 0.25] + 1 * [0.25, 0.75]) / 4 = [0.625, 0.375].
  add("WeightedSoftWeightsShiftTheMean", kWeighted, {W(3, {0.75, 0.25}), W(1, {0.25, 0.75})}, 2, 0,
      Ok({0.625, 0.375}, {0.625, 0.375}, {1, 1}, {0, 1}, 0.5, 2));
  // Weight 0 means 1: (1 * [0.75, 0.25] + 3 * [0.375, 0.625]) / 4 = [0.46875, 0.53125] (not [0.375, 0.625]).
  add("WeightedSoftZeroWeightMeansOne", kWeighted, {W(0, {0.75, 0.25}), W(3, {0.375, 0.625})}, 2, 0,
      Ok({0.46875, 0.53125}, {0.46875, 0.53125}, {1.125, 0.875}, {1, 0}, 0.5, 2));
  // The missing member's weight 10 is not in the denominator: (1 * [0.25, 0.75] + 3 * [0.75, 0.25]) / 4.
  add("WeightedSoftNormalisesOverAnsweringMembers", kWeighted,
      {Missing({0.5, 0.5}, 10), W(1, {0.25, 0.75}), W(3, {0.75, 0.25})}, 2, 2,
      Ok({0.625, 0.375}, {0.625, 0.375}, {1, 1}, {0, 1}, 0.5, 2));
  // (2 * [1, 0] + [0, 1] + [0, 1]) / 4 = [0.5, 0.5]: the score ties, summed probability [1, 2] picks class 1.
  add("WeightedSoftScoreTieBrokenBySummedProbability", kWeighted, {W(2, {1, 0}), A({0, 1}), A({0, 1})}, 2, 0,
      Ok({0.5, 0.5}, {0.5, 0.5}, {1, 2}, {1, 0}, 2 * third, 3));
  add("NegativeWeightRejected", kWeighted, {A({1, 0}), W(-1, {0, 1})}, 2, 0,
      Error(StatusCode::kInvalidArgument, "members[1].weight is -1"));
  add("NaNWeightRejected", kWeighted, {W(kNaN, {1, 0})}, 2, 0,
      Error(StatusCode::kInvalidArgument, "members[0].weight is nan"));
  add("InfiniteWeightRejectedForEveryStrategy", kSoft, {A({1, 0}), Missing({}, kInf)}, 2, 1,
      Error(StatusCode::kInvalidArgument, "members[1].weight is inf"));

  // --- GEOMETRIC_MEAN: mean log-probability; probability = normalised geometric mean.
  {
    // sqrt of the products: [sqrt(0.5 * 0.125), sqrt(0.25 * 0.5), sqrt(0.25 * 0.375)] = [0.25, 0.3536, 0.3062].
    const std::vector<double> g = {std::sqrt(0.5 * 0.125), std::sqrt(0.25 * 0.5), std::sqrt(0.25 * 0.375)};
    const double sum = g[0] + g[1] + g[2];
    add("GeometricMeanTwoMembers", kGeometric, {A({0.5, 0.25, 0.25}), A({0.125, 0.5, 0.375})}, 3, 0,
        Ok({std::log(g[0]), std::log(g[1]), std::log(g[2])}, {g[0] / sum, g[1] / sum, g[2] / sum},
           {0.625, 0.75, 0.625}, {1, 2, 0}, 0.5, 2));
  }
  {
    // A zero is floored at 1e-30 before the log: scores stay finite; exp differences give [1, 1/sqrt2, 1/sqrt2].
    const double h = std::sqrt(0.5);
    const double sum = 1 + 2 * h;
    add("GeometricMeanZeroIsFloored", kGeometric, {A({1, 0, 0}), A({0, 0.5, 0.5})}, 3, 0,
        Ok({kLogFloor / 2, (kLogFloor + std::log(0.5)) / 2, (kLogFloor + std::log(0.5)) / 2},
           {1 / sum, h / sum, h / sum}, {1, 0.5, 0.5}, {0, 1, 2}, 0.5, 2));
  }
  add("GeometricMeanFullTieBrokenByLowerIndex", kGeometric, {A({0, 0, 1}), A({0, 1, 0}), A({1, 0, 0})}, 3, 0,
      Ok({2 * kLogFloor / 3, 2 * kLogFloor / 3, 2 * kLogFloor / 3}, {third, third, third}, {1, 1, 1}, {0, 1, 2},
         third, 3));

  // --- BORDA: C-1 points for a member's best class ... 0 for its worst; equal values share the mean.
  // [2, 1, 0] + [0, 2, 1] + [2, 0, 1] = [4, 3, 2]; out of 3 members * 3 points.
  add("BordaRankPoints", kBorda, {A({0.5, 0.375, 0.125}), A({0.125, 0.5, 0.375}), A({0.625, 0.125, 0.25})}, 3, 0,
      Ok({4, 3, 2}, {4.0 / 9, 3.0 / 9, 2.0 / 9}, {1.25, 1.0, 0.75}, {0, 1, 2}, 2 * third, 3));
  // [2, 1, 0] + [1, 2, 0] = [3, 3, 0]: the score ties, summed probability [0.75, 1.0] picks class 1.
  add("BordaScoreTieBrokenBySummedProbability", kBorda, {A({0.5, 0.375, 0.125}), A({0.25, 0.625, 0.125})}, 3, 0,
      Ok({3, 3, 0}, {0.5, 0.5, 0}, {0.75, 1.0, 0.25}, {1, 0, 2}, 0.5, 2));
  // [1, 0, 0] gives [2, 0.5, 0.5] (the zeros share 1 + 0), [0, 0, 1] gives [0.5, 0.5, 2]: [2.5, 1, 2.5]; classes 0
  // and 2 tie on score and sum: lower index.
  add("BordaEqualValuesShareTheirPoints", kBorda, {A({1, 0, 0}), A({0, 0, 1})}, 3, 0,
      Ok({2.5, 1, 2.5}, {2.5 / 6, 1.0 / 6, 2.5 / 6}, {1, 0, 1}, {0, 2, 1}, 0.5, 2));
  // Uniform member: 1.5 points each. [0.125, 0.125, 0.5, 0.25]: class 2 gets 3, class 3 2, classes 0 and 1 0.5.
  // Total [2, 2, 4.5, 3.5] out of 2 * 6.
  add("BordaUniformMemberFavoursNobody", kBorda, {A({0.25, 0.25, 0.25, 0.25}), A({0.125, 0.125, 0.5, 0.25})}, 4, 0,
      Ok({2, 2, 4.5, 3.5}, {2.0 / 12, 2.0 / 12, 4.5 / 12, 3.5 / 12}, {0.375, 0.375, 0.75, 0.5}, {2, 3, 0, 1}, 0.5,
         2));

  // --- MAX_CONFIDENCE: the member with the highest max probability decides alone.
  // Member 1 (max 0.75) decides; its classes 0 and 2 tie at 0.125 and summed probability [1.25, 0.5] orders them.
  add("MaxConfidencePicksMostConfidentMember", kMaxConfidence,
      {A({0.5, 0.25, 0.25}), A({0.125, 0.75, 0.125}), A({0.625, 0.25, 0.125})}, 3, 0,
      Ok({0.125, 0.75, 0.125}, {0.125, 0.75, 0.125}, {1.25, 1.25, 0.5}, {1, 0, 2}, third, 3, {}, 1));
  add("MaxConfidenceEqualMaximaPickLowerMember", kMaxConfidence, {A({0.25, 0.75, 0}), A({0.75, 0.25, 0})}, 3, 0,
      Ok({0.25, 0.75, 0}, {0.25, 0.75, 0}, {1, 1, 0}, {1, 0, 2}, 0.5, 2, {}, 0));
  // Member 0 is missing (its confident row is ignored); members 1 and 2 both peak at 0.5: member 1 decides.
  add("MaxConfidenceSkipsMissingMember", kMaxConfidence,
      {Missing({0, 0, 1}), A({0.5, 0.5, 0}), A({0.25, 0.25, 0.5})}, 3, 1,
      Ok({0.5, 0.5, 0}, {0.5, 0.5, 0}, {0.75, 0.75, 0.5}, {0, 1, 2}, 0.5, 2, {}, 1));

  // --- Missing members and the quorum (0 means all).
  // Member 0 (a row of the wrong size, never read) is out of the mean and of agreement's denominator.
  add("MissingMemberExcludedFromMeanAndAgreement", kSoft, {Missing({1}), A({0.75, 0.25}), A({0.5, 0.5})}, 2, 2,
      Ok({0.625, 0.375}, {0.625, 0.375}, {1.25, 0.75}, {0, 1}, 1.0, 2));
  add("QuorumExactlyMet", kSoft, {A({0.75, 0.25}), Missing(), A({0.75, 0.25})}, 2, 2,
      Ok({0.75, 0.25}, {0.75, 0.25}, {1.5, 0.5}, {0, 1}, 1.0, 2));
  add("QuorumNotMet", kSoft, {A({0.75, 0.25}), Missing(), Missing()}, 2, 2,
      Error(StatusCode::kUnavailable, "ensemble: 1 of 3 members answered, quorum is 2"));
  add("QuorumZeroMeansAllMembers", kHard, {A({0.75, 0.25}), A({0.75, 0.25}), Missing()}, 2, 0,
      Error(StatusCode::kUnavailable, "ensemble: 2 of 3 members answered, quorum is 3"));
  add("QuorumZeroAllAnswered", kHard, {A({0.75, 0.25}), A({0.25, 0.75}), A({0.75, 0.25})}, 2, 0,
      Ok({2, 1}, {2 * third, third}, {1.75, 1.25}, {0, 1}, 2 * third, 3));
  add("NoMemberAnswered", kBorda, {Missing(), Missing()}, 2, 1,
      Error(StatusCode::kUnavailable, "ensemble: 0 of 2 members answered, quorum is 1"));
  add("QuorumAboveMemberCountRejected", kSoft, {A({1, 0})}, 2, 2,
      Error(StatusCode::kInvalidArgument, "quorum 2 is outside [0, 1]"));
  add("NegativeQuorumRejected", kSoft, {A({1, 0})}, 2, -1,
      Error(StatusCode::kInvalidArgument, "quorum -1 is outside [0, 1]"));

  // --- Unusable rows count as not answered.
  add("NaNRowExcludedLikeMissing", kSoft, {A({kNaN, 0.5, 0.5}), A({0.25, 0.5, 0.25})}, 3, 1,
      Ok({0.25, 0.5, 0.25}, {0.25, 0.5, 0.25}, {0.25, 0.5, 0.25}, {1, 0, 2}, 1.0, 1, {0}));
  add("NaNRowCountsAgainstQuorum", kSoft, {A({kNaN, 0.5, 0.5}), A({0.25, 0.5, 0.25})}, 3, 0,
      Error(StatusCode::kUnavailable,
            "ensemble: 1 of 2 members answered, quorum is 2 (unusable probabilities, non-finite, negative or all "
            "zero, from members [0])"));
  add("NegativeInfiniteAndAllZeroRowsExcluded", kGeometric,
      {A({-0.5, 1.5}), A({kInf, 0}), A({0, 0}), A({0.25, 0.75})}, 2, 1,
      Ok({std::log(0.25), std::log(0.75)}, {0.25, 0.75}, {0.25, 0.75}, {1, 0}, 1.0, 1, {0, 1, 2}));

  // --- Bad arguments.
  add("UnspecifiedStrategyRejected", Config::STRATEGY_UNSPECIFIED, {A({1, 0})}, 2, 0,
      Error(StatusCode::kInvalidArgument, "strategy STRATEGY_UNSPECIFIED is not one of"));
  add("UnknownStrategyRejected", static_cast<EnsembleStrategy>(42), {A({1, 0})}, 2, 0,
      Error(StatusCode::kInvalidArgument, "strategy STRATEGY(42) is not one of"));
  add("NoMembersRejected", kSoft, {}, 2, 0, Error(StatusCode::kInvalidArgument, "ensemble: no members"));
  add("ZeroClassesRejected", kSoft, {A({})}, 0, 0,
      Error(StatusCode::kInvalidArgument, "num_classes is 0, must be >= 1"));
  add("RowSizeMismatchRejected", kSoft, {A({0.5, 0.5, 0}), A({1, 0})}, 3, 0,
      Error(StatusCode::kInvalidArgument, "members[1] has 2 probabilities, expected num_classes 3"));
  return rows;
}

// |actual - expected| <= 1e-6 * max(1, |expected|).
void ExpectRowNear(const std::vector<float>& actual, const std::vector<double>& expected, const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t c = 0; c < expected.size(); ++c) {
    EXPECT_NEAR(actual[c], expected[c], 1e-6 * std::max(1.0, std::abs(expected[c]))) << what << "[" << c << "]";
  }
}

class VotingTest : public ::testing::TestWithParam<Row> {};

TEST_P(VotingTest, Combines) {
  const Row& row = GetParam();
  const std::vector<MemberVote> votes = Votes(row.members);
  const StatusOr<Vote> vote = CombineVotes(row.strategy, votes, row.num_classes, row.quorum);
  const Expect& expect = row.expect;
  if (expect.code != StatusCode::kOk) {
    ASSERT_FALSE(vote.ok());
    EXPECT_EQ(vote.status().code(), expect.code) << vote.status().ToString();
    EXPECT_NE(vote.status().message().find(expect.message), std::string::npos) << vote.status().ToString();
    return;
  }
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  ExpectRowNear(vote->scores, expect.scores, "scores");
  ExpectRowNear(vote->probabilities, expect.probabilities, "probabilities");
  ExpectRowNear(vote->tie_break, expect.tie_break, "tie_break");
  EXPECT_EQ(RankVote(*vote, static_cast<int>(row.num_classes)), expect.order);
  EXPECT_EQ(vote->top1, expect.order.front());
  EXPECT_NEAR(vote->agreement, expect.agreement, 1e-6);
  EXPECT_EQ(vote->members_answered, expect.answered);
  EXPECT_EQ(vote->members_total, static_cast<int32_t>(row.members.size()));
  EXPECT_EQ(vote->invalid_members, expect.invalid);
  EXPECT_EQ(vote->chosen_member, expect.chosen);
}

INSTANTIATE_TEST_SUITE_P(Table, VotingTest, ::testing::ValuesIn(Rows()),
                         [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

// --- Per-strategy corner cases, each over all six strategies.

TEST(VotingEdgeTest, SingleMemberAgreesWithItself) {
  const std::vector<Member> members = {A({0.125, 0.25, 0.5, 0.125})};
  const std::vector<MemberVote> votes = Votes(members);
  for (EnsembleStrategy strategy : kAllStrategies) {
    SCOPED_TRACE(EnsembleStrategyName(strategy));
    const StatusOr<Vote> vote = CombineVotes(strategy, votes, 4, 0);
    ASSERT_TRUE(vote.ok()) << vote.status().ToString();
    EXPECT_EQ(vote->top1, 2);
    EXPECT_EQ(vote->member_top1, std::vector<int32_t>{2});
    EXPECT_FLOAT_EQ(vote->agreement, 1.0f);
    EXPECT_EQ(vote->members_answered, 1);
    // Classes 0 and 3 tie everywhere (same probability): the lower index first.
    EXPECT_EQ(RankVote(*vote, 4), (std::vector<int32_t>{2, 1, 0, 3}));
  }
}

TEST(VotingEdgeTest, OneClassIsCertain) {
  const std::vector<Member> members = {A({1}), A({1}), Missing()};
  const std::vector<MemberVote> votes = Votes(members);
  for (EnsembleStrategy strategy : kAllStrategies) {
    SCOPED_TRACE(EnsembleStrategyName(strategy));
    const StatusOr<Vote> vote = CombineVotes(strategy, votes, 1, 2);
    ASSERT_TRUE(vote.ok()) << vote.status().ToString();
    EXPECT_EQ(vote->probabilities, std::vector<float>{1.0f});
    EXPECT_EQ(vote->tie_break, std::vector<float>{2.0f});
    EXPECT_EQ(vote->top1, 0);
    EXPECT_FLOAT_EQ(vote->agreement, 1.0f);
    EXPECT_EQ(RankVote(*vote, 5), std::vector<int32_t>{0});
  }
}

TEST(VotingEdgeTest, KLargerThanClassCountReturnsEveryClass) {
  const std::vector<Member> members = {A({0.25, 0.5, 0.25}), A({0.125, 0.25, 0.625})};
  const std::vector<MemberVote> votes = Votes(members);
  for (EnsembleStrategy strategy : kAllStrategies) {
    SCOPED_TRACE(EnsembleStrategyName(strategy));
    const StatusOr<Vote> vote = CombineVotes(strategy, votes, 3, 0);
    ASSERT_TRUE(vote.ok()) << vote.status().ToString();
    const std::vector<int32_t> all = RankVote(*vote, 3);
    EXPECT_EQ(RankVote(*vote, 1000), all);
    EXPECT_EQ(RankVote(*vote, 2), std::vector<int32_t>(all.begin(), all.begin() + 2));
    EXPECT_TRUE(RankVote(*vote, 0).empty());
    EXPECT_TRUE(RankVote(*vote, -1).empty());
  }
}

TEST(VotingEdgeTest, RankVoteOrdersNaNLastAndWorksWithoutTieBreak) {
  Vote vote;
  vote.scores = {kNaN, 0.5f, 0.5f, 0.75f};
  vote.tie_break = {9.0f, 0.25f, 0.5f, 0.0f};
  EXPECT_EQ(RankVote(vote, 4), (std::vector<int32_t>{3, 2, 1, 0}));
  vote.tie_break.clear();
  EXPECT_EQ(RankVote(vote, 4), (std::vector<int32_t>{3, 1, 2, 0}));
}

TEST(VotingEdgeTest, StrategyNames) {
  EXPECT_EQ(EnsembleStrategyName(kBorda), "BORDA");
  EXPECT_EQ(EnsembleStrategyName(Config::STRATEGY_UNSPECIFIED), "STRATEGY_UNSPECIFIED");
  EXPECT_EQ(EnsembleStrategyName(static_cast<EnsembleStrategy>(-3)), "STRATEGY(-3)");
}

// --- Properties over generated rows: every strategy gives a distribution, a consistent ranking and agreement.

TEST(VotingPropertyTest, InvariantsHoldOnGeneratedRows) {
  uint32_t seed = 2024;
  auto next = [&seed](uint32_t bound) {
    seed = seed * 1664525u + 1013904223u;
    return (seed >> 8) % bound;
  };
  auto uniform = [&next]() { return static_cast<double>(next(1u << 20)) / (1u << 20); };
  for (int round = 0; round < 3000; ++round) {
    const int64_t classes = 1 + next(12);
    const int members_count = 1 + static_cast<int>(next(6));
    std::vector<Member> members;
    int answered = 0;
    for (int m = 0; m < members_count; ++m) {
      Member member;
      member.answered = next(5) != 0;
      member.weight = next(4) == 0 ? 0.0f : static_cast<float>(uniform() * 4);
      // Softmax of logits spread by a random temperature: from near-uniform to saturated (exact zeros).
      const double spread = next(3) == 0 ? 200.0 : 1.0 + uniform() * 10;
      std::vector<double> logits(classes);
      for (double& l : logits) l = next(4) == 0 ? 0.0 : (uniform() - 0.5) * spread;  // some equal logits
      const double max = *std::max_element(logits.begin(), logits.end());
      double sum = 0.0;
      for (double l : logits) sum += std::exp(l - max);
      for (double l : logits) member.row.push_back(static_cast<float>(std::exp(l - max) / sum));
      answered += member.answered ? 1 : 0;
      members.push_back(std::move(member));
    }
    if (answered == 0) {
      members[0].answered = true;
      answered = 1;
    }
    const std::vector<MemberVote> votes = Votes(members);
    for (EnsembleStrategy strategy : kAllStrategies) {
      SCOPED_TRACE("round " + std::to_string(round) + " " + EnsembleStrategyName(strategy));
      const StatusOr<Vote> vote = CombineVotes(strategy, votes, classes, 1);
      ASSERT_TRUE(vote.ok()) << vote.status().ToString();
      ASSERT_EQ(vote->scores.size(), static_cast<size_t>(classes));
      ASSERT_EQ(vote->probabilities.size(), static_cast<size_t>(classes));
      ASSERT_EQ(vote->tie_break.size(), static_cast<size_t>(classes));
      double sum = 0.0;
      for (int64_t c = 0; c < classes; ++c) {
        ASSERT_TRUE(std::isfinite(vote->scores[c]));
        ASSERT_GE(vote->probabilities[c], 0.0f);
        ASSERT_LE(vote->probabilities[c], 1.0f);
        sum += vote->probabilities[c];
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
      EXPECT_EQ(vote->members_answered, answered);
      // The ranking is sorted in the documented order and starts with top1.
      const std::vector<int32_t> order = RankVote(*vote, static_cast<int>(classes));
      ASSERT_EQ(order.size(), static_cast<size_t>(classes));
      EXPECT_EQ(order.front(), vote->top1);
      for (size_t i = 1; i < order.size(); ++i) {
        EXPECT_TRUE(VoteRanksBefore(vote->scores, vote->tie_break, order[i - 1], order[i]));
      }
      // Agreement recounted from the members' own top-1 (highest probability, then lower index).
      int agreeing = 0;
      for (size_t m = 0; m < members.size(); ++m) {
        if (!members[m].answered) {
          EXPECT_EQ(vote->member_top1[m], -1);
          continue;
        }
        const std::vector<float>& row = members[m].row;
        const int32_t top = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
        EXPECT_EQ(vote->member_top1[m], top);
        agreeing += top == vote->top1 ? 1 : 0;
      }
      EXPECT_NEAR(vote->agreement, static_cast<double>(agreeing) / answered, 1e-6);
      // The strategies that rank by a mean probability rank the same way as their distribution.
      if (strategy == kSoft || strategy == kWeighted || strategy == kMaxConfidence) {
        const float top_p = vote->probabilities[vote->top1];
        for (int64_t c = 0; c < classes; ++c) EXPECT_LE(vote->probabilities[c], top_p + 1e-6f);
      }
    }
  }
}

}  // namespace
}  // namespace cnnserve
