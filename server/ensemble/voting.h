// Ensemble voting: how the members' probability rows for one image become the ensemble's row. Pure functions,
// no threads, no I/O; the ensemble servable (ensemble_servable.h) calls CombineVotes once per image.
//
// Inputs. Each member contributes one row of num_classes probabilities (its softmax output) or nothing (it
// failed, timed out, was unavailable: answered == false). An answered row is *usable* when every value is finite
// and >= 0 and the row sums to more than 0; an answered but unusable row (NaN, +-inf, a negative value, all
// zeros) is left out exactly like a member that did not answer and is listed in Vote::invalid_members. Each
// usable row is first scaled to sum to 1 (a no-op up to rounding for softmax output). Below, n is the number of
// usable members, p_m the scaled row of usable member m, and "member order" (the order in which a member ranks
// the classes) is: higher p_m[c] first, equal values by lower class index (TopK's order, classification.h).
// top1(m) is the first class in member m's order. All sums are accumulated in double and stored as float.
//
// Strategies (score: what ranks the classes; probability: the ensemble distribution, always sums to 1):
//   HARD_MAJORITY   score[c] = number of members with top1(m) == c (one vote each; weights are ignored).
//                   probability[c] = score[c] / n.
//   SOFT_MEAN       score[c] = (1/n) * sum_m p_m[c].               probability = score scaled to sum 1.
//   WEIGHTED_SOFT   score[c] = sum_m w_m p_m[c] / sum_m w_m over usable members, w_m = weight (0 means 1).
//                   probability = score scaled to sum 1.
//   GEOMETRIC_MEAN  score[c] = (1/n) * sum_m log(max(p_m[c], kProbabilityFloor)) (finite even for p = 0).
//                   probability[c] = exp(score[c]) / sum_c' exp(score[c']) (normalised geometric mean).
//   BORDA           each member gives C-1 points to the first class in its order, C-2 to the second, ..., 0 to
//                   the last (C = num_classes); classes with equal p_m share the mean of the points of the
//                   places they occupy (so an indifferent or saturated member, e.g. [1, 0, 0, 0], does not
//                   favour low indices among its zeros). score[c] = summed points.
//                   probability = score / (n * C * (C-1) / 2); for C == 1 it is [1].
//   MAX_CONFIDENCE  the usable member with the highest max_c p_m[c] (equal maxima: lower member index) decides
//                   alone: score = probability = its row. Vote::chosen_member names it.
// For every strategy tie_break[c] = sum_m p_m[c] over usable members (unweighted), and the ensemble's ranking
// is: higher score, then higher tie_break, then lower class index (RankVote; the same order as
// RunResult::Ranked in server/servables/servable.h). agreement = (number of usable members whose top1(m) equals
// the ensemble's top-1) / n.
//
// Quorum: the least number of usable members a result needs; 0 means all members. Fewer -> UNAVAILABLE
// "ensemble: N of M members answered, quorum is Q" (plus which answered rows were unusable).
//
// Thread-safety: pure functions; safe to call concurrently.
#ifndef CNNSERVE_SERVER_ENSEMBLE_VOTING_H_
#define CNNSERVE_SERVER_ENSEMBLE_VOTING_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cnnserve/v1/model_config.pb.h"
#include "engine/common/status.h"

namespace cnnserve {

using EnsembleStrategy = v1::EnsembleConfig::Strategy;

// GEOMETRIC_MEAN's lower bound on a probability before its logarithm (log(1e-30) is about -69.1).
inline constexpr double kProbabilityFloor = 1e-30;

// One member's answer for one image.
struct MemberVote {
  // False: the member failed or did not answer in time; `probabilities` is ignored.
  bool answered = false;
  // WEIGHTED_SOFT's weight (0 means 1); must be finite and >= 0 for every strategy (a config error otherwise).
  float weight = 1.0f;
  // When answered: num_classes probabilities (the member's softmax row). A view; not kept.
  std::span<const float> probabilities;
};

// The ensemble's answer for one image. Rows have num_classes entries.
struct Vote {
  std::vector<float> scores;         // what ranks the classes (see the header comment per strategy)
  std::vector<float> probabilities;  // the combined distribution; sums to 1
  std::vector<float> tie_break;      // summed probability over usable members: the second ranking key
  int32_t top1 = 0;                  // the ensemble's best class (RankVote(vote, 1)[0])
  float agreement = 0.0f;            // share of usable members whose own top-1 is `top1`, in [0, 1]
  int32_t members_answered = 0;      // usable members (n)
  int32_t members_total = 0;         // all members, usable or not
  // Per member, in input order: its top-1 class, or -1 when it did not answer or its row was unusable.
  std::vector<int32_t> member_top1;
  // Members that answered with an unusable row (non-finite or negative values, or all zeros), ascending.
  std::vector<int32_t> invalid_members;
  // MAX_CONFIDENCE: the member whose row was taken; -1 for the other strategies.
  int32_t chosen_member = -1;
};

// Combines the members' rows for one image with `strategy`.
// Errors: INVALID_ARGUMENT for a strategy that is not one of the six (STRATEGY_UNSPECIFIED included: the config
// layer maps it to SOFT_MEAN), no members, num_classes < 1, quorum < 0 or > members.size(), a negative or
// non-finite weight, or an answered row whose size is not num_classes (naming members[i]); UNAVAILABLE when fewer
// than quorum (0: all) members have usable rows.
StatusOr<Vote> CombineVotes(EnsembleStrategy strategy, std::span<const MemberVote> members, int64_t num_classes,
                            int32_t quorum);

// The `k` best class indices of `vote` (k clamped to [0, num_classes]), best first: higher score, then higher
// tie_break, then lower index; NaN scores last (they do not occur in CombineVotes' output). Also accepts a Vote
// whose tie_break is empty (then only score and index order).
std::vector<int32_t> RankVote(const Vote& vote, int k);

// True when class a ranks before class b in the order above. `tie_break` may be empty.
bool VoteRanksBefore(std::span<const float> scores, std::span<const float> tie_break, int32_t a, int32_t b);

// "HARD_MAJORITY", ..., "STRATEGY_UNSPECIFIED", or "STRATEGY(<n>)" for a value outside the enum.
std::string EnsembleStrategyName(EnsembleStrategy strategy);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_ENSEMBLE_VOTING_H_
