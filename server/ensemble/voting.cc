#include "server/ensemble/voting.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

namespace cnnserve {
namespace {

using Config = v1::EnsembleConfig;

bool IsKnownStrategy(EnsembleStrategy strategy) {
  switch (strategy) {
    case Config::HARD_MAJORITY:
    case Config::SOFT_MEAN:
    case Config::WEIGHTED_SOFT:
    case Config::GEOMETRIC_MEAN:
    case Config::BORDA:
    case Config::MAX_CONFIDENCE:
      return true;
    default:
      return false;
  }
}

// An answered row that can be voted with: finite, >= 0, positive sum. Returns the sum (0 when unusable).
double UsableRowSum(std::span<const float> row) {
  double sum = 0.0;
  for (float p : row) {
    if (!std::isfinite(p) || p < 0.0f) return 0.0;
    sum += p;
  }
  return std::isfinite(sum) ? sum : 0.0;
}

// Class indices in member order: higher probability first, equal values by lower index (TopK's order).
std::vector<int32_t> MemberOrder(std::span<const double> row) {
  std::vector<int32_t> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&row](int32_t a, int32_t b) { return row[a] > row[b]; });
  return order;
}

int32_t MemberTop1(std::span<const double> row) {
  int32_t best = 0;
  for (size_t c = 1; c < row.size(); ++c) {
    if (row[c] > row[best]) best = static_cast<int32_t>(c);
  }
  return best;
}

// Writes `values` scaled to sum 1 (a uniform row when the sum is not positive and finite).
void Normalise(std::span<const double> values, std::vector<float>& dst) {
  double sum = 0.0;
  for (double v : values) sum += v;
  dst.resize(values.size());
  for (size_t c = 0; c < values.size(); ++c) {
    dst[c] = (sum > 0.0 && std::isfinite(sum)) ? static_cast<float>(values[c] / sum)
                                               : static_cast<float>(1.0 / static_cast<double>(values.size()));
  }
}

std::string FormatFloat(float value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", static_cast<double>(value));
  return buffer;
}

std::vector<float> ToFloat(std::span<const double> values) {
  return std::vector<float>(values.begin(), values.end());
}

}  // namespace

std::string EnsembleStrategyName(EnsembleStrategy strategy) {
  if (strategy == Config::STRATEGY_UNSPECIFIED || IsKnownStrategy(strategy)) {
    return Config::Strategy_Name(strategy);
  }
  return "STRATEGY(" + std::to_string(static_cast<int>(strategy)) + ")";
}

bool VoteRanksBefore(std::span<const float> scores, std::span<const float> tie_break, int32_t a, int32_t b) {
  const float sa = scores[a];
  const float sb = scores[b];
  const bool nan_a = std::isnan(sa);
  const bool nan_b = std::isnan(sb);
  if (nan_a != nan_b) return nan_b;
  if (!nan_a && sa != sb) return sa > sb;
  if (!tie_break.empty()) {
    const float ta = tie_break[a];
    const float tb = tie_break[b];
    const bool tnan_a = std::isnan(ta);
    const bool tnan_b = std::isnan(tb);
    if (tnan_a != tnan_b) return tnan_b;
    if (!tnan_a && ta != tb) return ta > tb;
  }
  return a < b;
}

std::vector<int32_t> RankVote(const Vote& vote, int k) {
  const size_t num_classes = vote.scores.size();
  const size_t count = std::min(static_cast<size_t>(std::max(k, 0)), num_classes);
  std::span<const float> tie_break = vote.tie_break;
  if (tie_break.size() != num_classes) tie_break = {};
  std::vector<int32_t> order(num_classes);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(count), order.end(),
                    [&](int32_t a, int32_t b) { return VoteRanksBefore(vote.scores, tie_break, a, b); });
  order.resize(count);
  return order;
}

namespace {

Status CheckVoteArguments(EnsembleStrategy strategy, std::span<const MemberVote> members, int64_t num_classes,
                          int32_t quorum) {
  if (!IsKnownStrategy(strategy)) {
    return InvalidArgumentError("ensemble: strategy " + EnsembleStrategyName(strategy) +
                                " is not one of HARD_MAJORITY, SOFT_MEAN, WEIGHTED_SOFT, GEOMETRIC_MEAN, BORDA, "
                                "MAX_CONFIDENCE");
  }
  if (members.empty()) return InvalidArgumentError("ensemble: no members");
  if (num_classes < 1) {
    return InvalidArgumentError("ensemble: num_classes is " + std::to_string(num_classes) + ", must be >= 1");
  }
  const int32_t total = static_cast<int32_t>(members.size());
  if (quorum < 0 || quorum > total) {
    return InvalidArgumentError("ensemble: quorum " + std::to_string(quorum) + " is outside [0, " +
                                std::to_string(total) + "] (the member count; 0 means all)");
  }
  for (int32_t m = 0; m < total; ++m) {
    const MemberVote& member = members[m];
    if (!std::isfinite(member.weight) || member.weight < 0.0f) {
      return InvalidArgumentError("ensemble: members[" + std::to_string(m) + "].weight is " +
                                  FormatFloat(member.weight) + ", must be finite and >= 0 (0 means 1)");
    }
    if (member.answered && static_cast<int64_t>(member.probabilities.size()) != num_classes) {
      return InvalidArgumentError("ensemble: members[" + std::to_string(m) + "] has " +
                                  std::to_string(member.probabilities.size()) +
                                  " probabilities, expected num_classes " + std::to_string(num_classes));
    }
  }
  return OkStatus();
}

// The rows a vote combines: the usable answered rows, each scaled to sum 1.
struct Ballot {
  size_t classes = 0;
  std::vector<int32_t> usable;             // member indices, in member order
  std::vector<std::vector<double>> rows;   // per member; empty unless usable
};

// Fills `ballot` and vote.members_total / member_top1 / invalid_members / members_answered. UNAVAILABLE when
// fewer usable rows than the quorum remain.
Status CollectBallot(std::span<const MemberVote> members, int64_t num_classes, int32_t quorum, Ballot& ballot,
                     Vote& vote) {
  const int32_t total = static_cast<int32_t>(members.size());
  ballot.classes = static_cast<size_t>(num_classes);
  ballot.rows.resize(members.size());
  vote.members_total = total;
  vote.member_top1.assign(members.size(), -1);
  for (int32_t m = 0; m < total; ++m) {
    if (!members[m].answered) continue;
    const double sum = UsableRowSum(members[m].probabilities);
    if (!(sum > 0.0)) {
      vote.invalid_members.push_back(m);
      continue;
    }
    std::vector<double>& row = ballot.rows[m];
    row.resize(ballot.classes);
    for (size_t c = 0; c < ballot.classes; ++c) row[c] = static_cast<double>(members[m].probabilities[c]) / sum;
    vote.member_top1[m] = MemberTop1(row);
    ballot.usable.push_back(m);
  }
  const int32_t n = static_cast<int32_t>(ballot.usable.size());
  vote.members_answered = n;
  const int32_t needed = quorum == 0 ? total : quorum;
  if (n >= needed) return OkStatus();
  std::string message = "ensemble: " + std::to_string(n) + " of " + std::to_string(total) +
                        " members answered, quorum is " + std::to_string(needed);
  if (!vote.invalid_members.empty()) {
    message += " (unusable probabilities, non-finite, negative or all zero, from members";
    for (int32_t m : vote.invalid_members) message += " [" + std::to_string(m) + "]";
    message += ")";
  }
  return UnavailableError(std::move(message));
}

// One function per strategy: each fills vote.scores and vote.probabilities from the ballot.

void VoteHardMajority(const Ballot& ballot, Vote& vote) {
  std::vector<double> score(ballot.classes, 0.0);
  for (int32_t m : ballot.usable) score[vote.member_top1[m]] += 1.0;
  vote.scores = ToFloat(score);
  Normalise(score, vote.probabilities);
}

// SOFT_MEAN (every weight 1) or WEIGHTED_SOFT (the members' weights, 0 meaning 1).
void VoteSoftMean(const Ballot& ballot, std::span<const MemberVote> members, bool weighted, Vote& vote) {
  std::vector<double> score(ballot.classes, 0.0);
  double weight_sum = 0.0;
  for (int32_t m : ballot.usable) {
    const double w = weighted && members[m].weight > 0.0f ? members[m].weight : 1.0;
    weight_sum += w;
    for (size_t c = 0; c < ballot.classes; ++c) score[c] += w * ballot.rows[m][c];
  }
  for (double& s : score) s /= weight_sum;
  vote.scores = ToFloat(score);
  Normalise(score, vote.probabilities);
}

void VoteGeometricMean(const Ballot& ballot, Vote& vote) {
  std::vector<double> score(ballot.classes, 0.0);
  for (int32_t m : ballot.usable) {
    for (size_t c = 0; c < ballot.classes; ++c) score[c] += std::log(std::max(ballot.rows[m][c], kProbabilityFloor));
  }
  for (double& s : score) s /= static_cast<double>(ballot.usable.size());
  vote.scores = ToFloat(score);
  const double max_score = *std::max_element(score.begin(), score.end());
  std::vector<double> geometric(ballot.classes);
  for (size_t c = 0; c < ballot.classes; ++c) geometric[c] = std::exp(score[c] - max_score);
  Normalise(geometric, vote.probabilities);
}

void VoteBorda(const Ballot& ballot, Vote& vote) {
  const size_t classes = ballot.classes;
  std::vector<double> score(classes, 0.0);
  for (int32_t m : ballot.usable) {
    const std::vector<double>& row = ballot.rows[m];
    const std::vector<int32_t> order = MemberOrder(row);
    for (size_t first = 0; first < classes;) {
      size_t last = first + 1;  // [first, last): places holding an equal value
      while (last < classes && row[order[last]] == row[order[first]]) ++last;
      // Places first..last-1 are worth C-1-first .. C-last points; each class there gets their mean.
      const double points = static_cast<double>(classes - 1) - (static_cast<double>(first + last - 1) / 2.0);
      for (size_t place = first; place < last; ++place) score[order[place]] += points;
      first = last;
    }
  }
  vote.scores = ToFloat(score);
  if (classes == 1) {
    vote.probabilities = {1.0f};
  } else {
    Normalise(score, vote.probabilities);
  }
}

void VoteMaxConfidence(const Ballot& ballot, Vote& vote) {
  int32_t chosen = ballot.usable.front();
  double chosen_max = ballot.rows[chosen][vote.member_top1[chosen]];
  for (int32_t m : ballot.usable) {
    const double max = ballot.rows[m][vote.member_top1[m]];
    if (max > chosen_max) {
      chosen = m;
      chosen_max = max;
    }
  }
  vote.chosen_member = chosen;
  vote.scores = ToFloat(ballot.rows[chosen]);
  Normalise(ballot.rows[chosen], vote.probabilities);
}

Status VoteWithStrategy(EnsembleStrategy strategy, const Ballot& ballot, std::span<const MemberVote> members,
                        Vote& vote) {
  switch (strategy) {
    case Config::HARD_MAJORITY:
      VoteHardMajority(ballot, vote);
      return OkStatus();
    case Config::SOFT_MEAN:
    case Config::WEIGHTED_SOFT:
      VoteSoftMean(ballot, members, /*weighted=*/strategy == Config::WEIGHTED_SOFT, vote);
      return OkStatus();
    case Config::GEOMETRIC_MEAN:
      VoteGeometricMean(ballot, vote);
      return OkStatus();
    case Config::BORDA:
      VoteBorda(ballot, vote);
      return OkStatus();
    case Config::MAX_CONFIDENCE:
      VoteMaxConfidence(ballot, vote);
      return OkStatus();
    default:
      return InternalError("ensemble: unhandled strategy " + EnsembleStrategyName(strategy));
  }
}

}  // namespace

StatusOr<Vote> CombineVotes(EnsembleStrategy strategy, std::span<const MemberVote> members, int64_t num_classes,
                            int32_t quorum) {
  CNN_RETURN_IF_ERROR(CheckVoteArguments(strategy, members, num_classes, quorum));
  Vote vote;
  Ballot ballot;
  CNN_RETURN_IF_ERROR(CollectBallot(members, num_classes, quorum, ballot, vote));
  CNN_RETURN_IF_ERROR(VoteWithStrategy(strategy, ballot, members, vote));
  // The tie-break: the members' summed probability per class.
  std::vector<double> tie_break(ballot.classes, 0.0);
  for (int32_t m : ballot.usable) {
    for (size_t c = 0; c < ballot.classes; ++c) tie_break[c] += ballot.rows[m][c];
  }
  vote.tie_break = ToFloat(tie_break);
  // The ensemble's top-1 and the members' agreement with it.
  vote.top1 = RankVote(vote, 1).front();
  int32_t agreeing = 0;
  for (int32_t m : ballot.usable) agreeing += vote.member_top1[m] == vote.top1 ? 1 : 0;
  vote.agreement = static_cast<float>(static_cast<double>(agreeing) / static_cast<double>(ballot.usable.size()));
  return vote;
}

}  // namespace cnnserve
