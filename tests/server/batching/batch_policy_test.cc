// The batch-formation policies (fixed delay and adaptive), one table row per rule and corner case.
#include "server/batching/batch_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace cnnserve {
namespace {

using Action = BatchDecision::Action;
constexpr int64_t kNever = Clock::kInfiniteFuture;

QueuedTaskInfo T(int64_t items, int64_t enqueue_us, int64_t deadline_us = kNever) {
  return QueuedTaskInfo{.num_items = items, .enqueue_time_us = enqueue_us, .deadline_us = deadline_us};
}
QueuedTaskInfo Cancelled(int64_t items, int64_t enqueue_us, int64_t deadline_us = kNever) {
  QueuedTaskInfo task = T(items, enqueue_us, deadline_us);
  task.cancelled = true;
  return task;
}
// `count` one-item tasks enqueued at 0, 1, 2, ...
std::vector<QueuedTaskInfo> Singles(int count) {
  std::vector<QueuedTaskInfo> queue = {};
  for (int i = 0; i < count; ++i) queue.push_back(T(1, i));
  return queue;
}
std::vector<size_t> Range(size_t count) {
  std::vector<size_t> indices;
  for (size_t i = 0; i < count; ++i) indices.push_back(i);
  return indices;
}

// Policy knobs of one row.
struct Policy {
  int64_t max_batch_size = 8;
  int64_t delay_us = 100;
  std::vector<int64_t> preferred = {};
  BatchingPolicy policy = BatchingPolicy::kFixedDelay;
  BatchLoad load = {};
};
Policy P(int64_t max_batch_size, int64_t delay_us, std::vector<int64_t> preferred = {}) {
  return Policy{max_batch_size, delay_us, std::move(preferred)};
}
// The adaptive policy with plans `plans`, items arriving every `interval_us` and served in `run_us` each.
Policy A(int64_t max_batch_size, int64_t delay_us, std::vector<int64_t> plans, int64_t interval_us,
         int64_t run_us) {
  return Policy{max_batch_size, delay_us, std::move(plans), BatchingPolicy::kAdaptive,
                BatchLoad{.item_interval_us = interval_us,
                          .item_run_us = run_us,
                          .items_coming = 0,
                          .recent_batch_items = 0,
                          .plan_costs = {}}};
}
// The adaptive policy with plans 1 and 4 (max 8) whose measured run times are `costs`, no arrival figures.
Policy C(std::vector<PlanCost> costs, int64_t items_coming = 0) {
  Policy policy = A(8, 1000, {1, 4}, Clock::kInfiniteFuture, 0);
  policy.load.plan_costs = std::move(costs);
  policy.load.items_coming = items_coming;
  return policy;
}

// Expected decision of one row: Idle(), Run(indices, items) or Wait(until), plus the drops.
struct Expect {
  BatchDecision::Action action = Action::kIdle;
  std::vector<size_t> run = {};
  int64_t batch_items = 0;
  int64_t wake_at_us = kNever;
  std::vector<size_t> expired = {};
  std::vector<size_t> cancelled = {};
  std::vector<size_t> invalid = {};

  Expect Expired(std::vector<size_t> indices) && {
    expired = std::move(indices);
    return std::move(*this);
  }
  Expect Cancelled(std::vector<size_t> indices) && {
    cancelled = std::move(indices);
    return std::move(*this);
  }
  Expect Invalid(std::vector<size_t> indices) && {
    invalid = std::move(indices);
    return std::move(*this);
  }
};
Expect Idle() { return Expect{}; }
Expect Run(std::vector<size_t> run, int64_t items) {
  return Expect{.action = Action::kRun, .run = std::move(run), .batch_items = items};
}
Expect Wait(int64_t until_us) { return Expect{.action = Action::kWait, .wake_at_us = until_us}; }

struct Row {
  std::string name;
  Policy policy;
  std::vector<QueuedTaskInfo> queue;
  int64_t now_us;
  bool flush;
  Expect expect;
};

std::ostream& operator<<(std::ostream& os, const Row& row) { return os << row.name; }

constexpr bool kFlush = true;

std::vector<Row> Rows() {
  std::vector<Row> rows;
  auto add = [&rows](std::string name, Policy policy, std::vector<QueuedTaskInfo> queue, int64_t now_us,
                     Expect expect, bool flush = false) {
    rows.push_back(Row{std::move(name), std::move(policy), std::move(queue), now_us, flush, std::move(expect)});
  };
  const Policy defaults = P(8, 100);  // max_batch_size 8, max_queue_delay_us 100, no preferred sizes

  // Each row: name, policy, queue (T(items, enqueue_us[, deadline_us])), now_us, expected decision[, flush].
  // --- Empty queue and the delay.
  add("EmptyQueueIsIdle", defaults, {}, 0, Idle());
  add("EmptyQueueIsIdleEvenWhenFlushing", defaults, {}, 0, Idle(), kFlush);
  add("ZeroDelayRunsOneTaskAtOnce", P(8, 0), {T(1, 0)}, 0, Run({0}, 1));
  add("ZeroDelayRunsEverythingThatFits", P(8, 0), {T(2, 0), T(3, 0)}, 0, Run({0, 1}, 5));
  add("BelowMaxWaitsForOldestDelay", defaults, {T(1, 0), T(2, 10)}, 50, Wait(100));
  add("OneMicroBeforeDelayEndStillWaits", defaults, {T(1, 0), T(2, 10)}, 99, Wait(100));
  add("DelayEndReachedRunsWhatIsThere", defaults, {T(1, 0), T(2, 10)}, 100, Run({0, 1}, 3));
  add("DelayLongPastRunsWhatIsThere", defaults, {T(1, 0), T(2, 10), T(1, 20)}, 10000, Run({0, 1, 2}, 4));
  add("DelayCountsFromOldestTask", P(8, 1000), {T(1, 500), T(1, 900)}, 1400, Wait(1500));
  add("HugeDelayDoesNotOverflow", P(8, kNever - 1), {T(1, 1000)}, 2000, Wait(kNever));

  // --- max_batch_size.
  add("ExactlyMaxRunsAtOnce", defaults, {T(4, 0), T(4, 1)}, 1, Run({0, 1}, 8));
  add("SingleTaskOfMaxItemsRunsAtOnce", defaults, {T(8, 0)}, 0, Run({0}, 8));
  add("AboveMaxRunsFirstMaxItems", defaults, Singles(10), 9, Run(Range(8), 8));
  add("MaxBatchSizeOneRunsOneTask", P(1, 100), Singles(3), 2, Run({0}, 1));
  add("MultiItemTaskThatDoesNotFitEndsTheBatch", defaults, {T(3, 0), T(3, 1), T(3, 2)}, 2, Run({0, 1}, 6));
  add("LaterSmallTaskIsNotPulledForward", defaults, {T(6, 0), T(3, 1), T(1, 2)}, 2, Run({0}, 6));
  add("TwoBigTasksRunOneAtATime", P(4, 100), {T(3, 0), T(4, 1)}, 1, Run({0}, 3));
  add("MultiItemTasksBelowMaxWait", defaults, {T(3, 0), T(4, 1)}, 1, Wait(100));

  // --- Preferred sizes.
  add("PreferredSizeReachedRunsAtOnce", P(8, 100, {4}), {T(2, 0), T(2, 1)}, 1, Run({0, 1}, 4));
  add("LargestReachablePreferredWins", P(8, 100, {2, 4}), Singles(5), 4, Run(Range(4), 4));
  add("PreferredOrderAndDuplicatesDoNotMatter", P(8, 100, {4, 2, 4}), Singles(3), 2, Run(Range(2), 2));
  add("PreferredNotReachableExactlyWaits", P(8, 100, {4}), {T(3, 0), T(3, 1)}, 1, Wait(100));
  add("PreferredSkippedOverByMultiItemTaskWaits", P(8, 100, {2}), {T(1, 0), T(3, 1)}, 1, Wait(100));
  add("PreferredBelowOneTaskIsNotReachable", P(8, 100, {1}), {T(2, 0)}, 0, Wait(100));
  add("DelayEndWithPreferredReachableRunsPreferredPrefix", P(8, 100, {2}), Singles(3), 100, Run(Range(2), 2));
  add("DelayEndWithPreferredNotReachableRunsAll", P(8, 100, {4}), Singles(3), 100, Run(Range(3), 3));
  add("FullBatchBeatsSmallerPreferred", P(8, 100, {4}), Singles(9), 8, Run(Range(8), 8));
  add("BlockedBatchUsesPreferredPrefix", P(8, 100, {4}), {T(2, 0), T(2, 1), T(2, 2), T(3, 3)}, 3, Run({0, 1}, 4));
  add("BlockedBatchWithoutPreferredRunsAllThatFits", P(8, 100, {5}), {T(2, 0), T(2, 1), T(2, 2), T(3, 3)}, 3,
      Run({0, 1, 2}, 6));
  add("ZeroDelayStillPrefersPreferredSize", P(8, 0, {4}), Singles(5), 4, Run(Range(4), 4));
  add("PreferredEqualToMax", P(8, 100, {8}), Singles(8), 7, Run(Range(8), 8));

  // --- Deadlines (a task expires when now_us >= deadline_us).
  add("ExpiredTaskDroppedRestWaits", defaults, {T(1, 0, 50), T(1, 10)}, 50, Wait(110).Expired({0}));
  add("ExpiredTaskInTheMiddleDropped", P(8, 0), {T(1, 0), T(1, 1, 5), T(1, 2)}, 5, Run({0, 2}, 2).Expired({1}));
  add("DeadlineInTheFutureIsKept", P(8, 0), {T(1, 0, 6)}, 5, Run({0}, 1));
  add("AllExpiredIsIdle", defaults, {T(1, 0, 10), T(2, 1, 20)}, 20, Idle().Expired({0, 1}));
  add("WakesAtEarliestDeadlineBeforeDelayEnd", defaults, {T(1, 0, 300), T(1, 10, 40)}, 20, Wait(40));
  add("DeadlineAfterDelayEndDoesNotMatter", defaults, {T(1, 0, 300)}, 20, Wait(100));
  add("ExpiredTasksDoNotFillTheBatch", defaults, {T(4, 0, 5), T(4, 1), T(4, 2)}, 5, Run({1, 2}, 8).Expired({0}));
  add("ExpiredOldestNoLongerSetsTheDelay", defaults, {T(1, 0, 30), T(1, 50)}, 120, Wait(150).Expired({0}));

  // --- Cancellation.
  add("CancelledTaskDropped", P(8, 0), {Cancelled(1, 0), T(1, 1)}, 1, Run({1}, 1).Cancelled({0}));
  add("CancelledWinsOverExpired", defaults, {Cancelled(1, 0, 5)}, 10, Idle().Cancelled({0}));
  add("CancelledTaskMakesRoom", defaults, {T(4, 0), Cancelled(4, 1), T(4, 2)}, 2, Run({0, 2}, 8).Cancelled({1}));
  add("CancelledOldestNoLongerSetsTheDelay", defaults, {Cancelled(1, 0), T(1, 50)}, 120, Wait(150).Cancelled({0}));
  add("MixedDrops", P(8, 0), {T(1, 0, 3), Cancelled(1, 1), T(2, 2), T(1, 3, 4)}, 4,
      Run({2}, 2).Expired({0, 3}).Cancelled({1}));

  // --- Flush (shutting down: no more tasks will come).
  add("FlushRunsWithoutWaiting", defaults, {T(1, 0)}, 0, Run({0}, 1), kFlush);
  add("FlushRespectsMax", defaults, {T(5, 0), T(5, 1)}, 1, Run({0}, 5), kFlush);
  add("FlushStillDropsExpired", defaults, {T(1, 0, 1), T(1, 0)}, 1, Run({1}, 1).Expired({0}), kFlush);

  // --- Adaptive (work-conserving): the deciding worker is a free instance. Plans 1, 4, 8; delay 1000.
  const int64_t kUnknown = kNever;
  add("AdaptiveIdleInstanceRunsATaskAtOnceWithoutLoadFigures", A(8, 1000, {1, 4}, kUnknown, 0), {T(1, 0)}, 0,
      Run({0}, 1));
  // With item_run_us alone a plan costs in proportion to its size: 2 items padded to plan 4 cost as much as 4,
  // so one runs on plan 1 and the other stays queued for the next batch.
  add("AdaptiveArrivalsSlowerThanServiceRunAtOnce", A(8, 1000, {1, 4}, 500, 100), {T(1, 0), T(1, 10)}, 10,
      Run({0}, 1));
  add("AdaptiveArrivalsAsFastAsServiceRunAtOnce", A(8, 1000, {1, 4}, 100, 100), {T(1, 0)}, 0, Run({0}, 1));
  // 2 queued, the next plan is 4: 2 more items due 2 x 10 us after the newest arrival (10). Plan 4 (150 us) costs
  // less per item than the best of now (2 items padded to plan 4: 75 us each): waiting saves 4 x 75 - 150 us.
  Policy fast = A(8, 1000, {1, 4}, 10, 100);
  fast.load.plan_costs = {{.batch_size = 1, .run_us = 100}, {.batch_size = 4, .run_us = 150}};
  add("AdaptiveFastArrivalsWaitUntilTheNextPlanIsDue", fast, {T(1, 0), T(1, 10)}, 12, Wait(30));
  add("AdaptiveRunsWhenTheItemsDueDidNotCome", fast, {T(1, 0), T(1, 10)}, 30, Run({0, 1}, 2));
  // With costs in proportion to the items (item_run_us alone) a larger batch saves nothing: no wait.
  add("AdaptiveFastArrivalsDoNotWaitWhenBatchingSavesNothing", A(8, 1000, {1, 4}, 10, 100), {T(1, 0), T(1, 10)},
      12, Run({0}, 1));
  add("AdaptiveTargetsMaxBatchAboveTheLastPlan", A(8, 1000, {1, 4}, 10, 100), {T(5, 0)}, 0, Wait(30));
  add("AdaptiveNeverWaitsPastTheDelay", A(8, 25, {1, 4}, 10, 100), {T(1, 0), T(1, 10)}, 12, Run({0}, 1));
  add("AdaptiveNeverWaitsPastADeadline", A(8, 1000, {1, 4}, 10, 100), {T(1, 0, 29), T(1, 10)}, 12, Run({0}, 1));
  // The items due would save less than the wait for them (plan 1 10 us, plan 4 12 us: 2 + 2 items apart cost 24,
  // together 12, saving 12 us against 18 us of waiting).
  Policy cheap_plans = A(8, 1000, {1, 4}, 10, 100);
  cheap_plans.load.plan_costs = {{.batch_size = 1, .run_us = 10}, {.batch_size = 4, .run_us = 12}};
  add("AdaptiveDoesNotWaitForItemsThatSaveLessThanTheWait", cheap_plans, {T(1, 0), T(1, 10)}, 12, Run({0, 1}, 2));
  add("AdaptiveFullBatchRunsAtOnce", A(8, 1000, {1, 4}, 1, 100), Singles(8), 7, Run(Range(8), 8));
  add("AdaptiveBlockedBatchRunsAtOnce", A(8, 1000, {1, 4}, 1, 100), {T(5, 0), T(4, 1)}, 1, Run({0}, 5));
  add("AdaptiveFlushRunsAtOnce", A(8, 1000, {1, 4}, 1, 100), {T(1, 0)}, 0, Run({0}, 1), kFlush);
  // What gathered while every instance was busy: the prefix with the most items per unit of cost. Padding 6 to
  // plan 8 is worth it when plan 8 costs little more than plan 4, not when it costs more than two batches of 4.
  add("AdaptiveTakesEverythingWhenPaddingIsCheap", C({{1, 100}, {4, 150}, {8, 200}}), Singles(6), 500,
      Run(Range(6), 6));
  add("AdaptiveCutsAtAPlanWhenPaddingCostsMore", C({{1, 100}, {4, 200}, {8, 800}}), Singles(6), 500,
      Run(Range(4), 4));
  // A plan whose cost was last timed kStalePlanBatches batches ago runs once on the whole candidate, whatever its
  // figure says, so that it is timed again; one batch sooner, the figure still decides.
  add("AdaptiveRunsTheWholeCandidateOnAStalePlan", C({{1, 100}, {4, 200}, {8, 800, kStalePlanBatches}}),
      Singles(6), 500, Run(Range(6), 6));
  add("AdaptiveCutsAtAPlanWhoseCostIsNotYetStale", C({{1, 100}, {4, 200}, {8, 800, kStalePlanBatches - 1}}),
      Singles(6), 500, Run(Range(4), 4));
  add("AdaptiveStalenessOfAShorterPlanDoesNotMatter", C({{1, 100}, {4, 200, kStalePlanBatches}, {8, 800}}),
      Singles(6), 500, Run(Range(4), 4));
  // A plan whose interval was doubled by a re-timing that confirmed it is stale only after that many batches.
  add("AdaptiveCutsAtAConfirmedPlanBeforeItsLongerInterval",
      C({{1, 100}, {4, 200}, {8, 800, 2 * kStalePlanBatches - 1, 2 * kStalePlanBatches}}), Singles(6), 500,
      Run(Range(4), 4));
  add("AdaptiveRunsTheWholeCandidateOnAConfirmedPlanAfterItsInterval",
      C({{1, 100}, {4, 200}, {8, 800, 2 * kStalePlanBatches, 2 * kStalePlanBatches}}), Singles(6), 500,
      Run(Range(6), 6));
  add("AdaptiveCutsAtAPlanWithLinearCosts", A(8, 1000, {1, 4}, 500, 100), Singles(6), 500, Run(Range(4), 4));
  // Items admitted and still being decoded are on their way: wait for them up to the delay or a deadline, when
  // running them together saves more than the delay (2 + 3 items: 2500 + 2500 apart, 3000 together).
  Policy coming = C({{1, 1500}, {4, 2500}, {8, 3000}}, 3);
  add("AdaptiveWaitsForItemsBeingDecodedUntilTheDelay", coming, {T(1, 0), T(1, 10)}, 12, Wait(1000));
  add("AdaptiveWaitsForItemsBeingDecodedUntilADeadline", coming, {T(1, 0, 400), T(1, 10)}, 12, Wait(400));
  add("AdaptiveRunsWhenTheDelayEndsWithItemsStillComing", coming, {T(1, 0), T(1, 10)}, 1000, Run({0, 1}, 2));
  add("AdaptiveFullBatchDoesNotWaitForItemsComing", coming, Singles(8), 7, Run(Range(8), 8));
  // The delay counts from when the instance became free, if that is later than the oldest task's arrival: tasks
  // that gathered while it was busy may still wait for the items being decoded behind them, up to the delay.
  Policy freed = coming;
  freed.load.instance_free_since_us = 5000;
  add("AdaptiveWaitsFromWhenTheInstanceFreedForItemsComing", freed, {T(1, 0), T(1, 10)}, 5000, Wait(6000));
  add("AdaptiveRunsOnceTheDelayAfterTheInstanceFreedEnds", freed, {T(1, 0), T(1, 10)}, 6000, Run({0, 1}, 2));
  add("AdaptiveDelayStillCountsFromALaterTask", freed, {T(1, 5500), T(1, 5600)}, 6000, Wait(6500));
  add("AdaptiveWaitAfterTheInstanceFreedStopsAtADeadline", freed, {T(1, 0, 5300), T(1, 10)}, 5000, Wait(5300));
  // Recent batches had 4 items (closed-loop clients come back in bursts): wait for the 2 missing ones while that
  // saves more than the delay; run once there are as many; a cheap model does not wait.
  Policy recent = C({{1, 1500}, {4, 2500}, {8, 3000}});
  recent.load.recent_batch_items = 4;
  add("AdaptiveWaitsForAsManyItemsAsRecentBatchesHad", recent, {T(1, 0), T(1, 10)}, 12, Wait(1000));
  add("AdaptiveRunsOnceItHasAsManyAsRecentBatches", recent, Singles(4), 12, Run(Range(4), 4));
  Policy recent_cheap = C({{1, 50}, {4, 80}, {8, 120}});
  recent_cheap.load.recent_batch_items = 4;
  add("AdaptiveCheapModelDoesNotWaitForRecentBatchSizes", recent_cheap, {T(1, 0), T(1, 10)}, 12, Run({0, 1}, 2));
  // A cheap model does not wait for them: batching 2 + 3 saves 40 us, less than the 1000 us delay.
  add("AdaptiveDoesNotWaitForItemsComingThatSaveLessThanTheDelay", C({{1, 50}, {4, 80}, {8, 120}}, 3),
      {T(1, 0), T(1, 10)}, 12, Run({0, 1}, 2));
  // Plan 1 costs 85 us an item, plans 4 and 8 100 and 96: running one at a time is the cheapest per item, so no
  // batch is worth waiting for, although 2 queued items padded to plan 4 would save 400 us by waiting for 6 more
  // (the price the wait once used; a closed loop of 8 clients then left the instance idle).
  Policy dearer = C({{1, 85}, {4, 400}, {8, 770}}, 6);
  dearer.delay_us = 300;
  add("AdaptiveDoesNotWaitForItemsComingInABatchDearerPerItem", dearer, {T(1, 0), T(1, 10)}, 12, Run({0}, 1));
  Policy dearer_recent = C({{1, 85}, {4, 400}, {8, 770}});
  dearer_recent.delay_us = 300;
  dearer_recent.load.recent_batch_items = 8;
  add("AdaptiveDoesNotWaitForRecentBatchSizesDearerPerItem", dearer_recent, {T(1, 0), T(1, 10)}, 12, Run({0}, 1));
  Policy dearer_fast = A(8, 300, {1, 4}, 10, 85);
  dearer_fast.load.plan_costs = dearer_recent.load.plan_costs;
  add("AdaptiveFastArrivalsDoNotWaitForAPlanDearerPerItem", dearer_fast, {T(1, 0), T(1, 10)}, 12, Run({0}, 1));
  add("AdaptiveDropsLikeFixed", A(8, 1000, {1, 4}, 500, 100), {T(1, 0, 3), Cancelled(1, 1), T(2, 2)}, 4,
      Run({2}, 2).Expired({0}).Cancelled({1}));

  // --- Item counts that Schedule would have rejected.
  add("OversizedTaskInvalid", P(4, 0), {T(5, 0), T(1, 1)}, 1, Run({1}, 1).Invalid({0}));
  add("ZeroItemTaskInvalid", defaults, {T(0, 0)}, 0, Idle().Invalid({0}));
  return rows;
}

class BatchPolicyTest : public ::testing::TestWithParam<Row> {};

TEST_P(BatchPolicyTest, Decides) {
  const Row& row = GetParam();
  DynamicBatcherOptions options;
  options.max_batch_size = row.policy.max_batch_size;
  options.max_queue_delay_us = row.policy.delay_us;
  options.preferred_batch_sizes = row.policy.preferred;
  options.policy = row.policy.policy;

  const BatchDecision decision = DecideBatch(row.queue, row.now_us, row.flush, options, row.policy.load);
  EXPECT_EQ(decision.action, row.expect.action);
  EXPECT_EQ(decision.run, row.expect.run);
  EXPECT_EQ(decision.batch_items, row.expect.batch_items);
  EXPECT_EQ(decision.wake_at_us, row.expect.wake_at_us);
  EXPECT_EQ(decision.expired, row.expect.expired);
  EXPECT_EQ(decision.cancelled, row.expect.cancelled);
  EXPECT_EQ(decision.invalid, row.expect.invalid);
}

INSTANTIATE_TEST_SUITE_P(Table, BatchPolicyTest, ::testing::ValuesIn(Rows()),
                         [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

// A re-timing of a stale figure: the new time confirms it (>= half the figure) and doubles the interval, up to
// kMaxStalePlanBatches; a time under half the figure resets it.
TEST(NextStaleAfterBatchesTest, DoublesWhenConfirmedAndResetsWhenFaster) {
  struct Row {
    int64_t run_us, interval, new_run_us, expected;
  };
  const std::vector<Row> rows = {
      {800, kStalePlanBatches, 800, 2 * kStalePlanBatches},        // the same time
      {800, kStalePlanBatches, 400, 2 * kStalePlanBatches},        // exactly half
      {800, kStalePlanBatches, 5000, 2 * kStalePlanBatches},       // slower still
      {800, 2 * kStalePlanBatches, 700, 4 * kStalePlanBatches},    // doubles again
      {800, kMaxStalePlanBatches / 2, 800, kMaxStalePlanBatches},  // reaches the cap
      {800, kMaxStalePlanBatches, 800, kMaxStalePlanBatches},      // stays at the cap
      {800, kStalePlanBatches, 399, kStalePlanBatches},            // under half: look again soon
      {800, kMaxStalePlanBatches, 1, kStalePlanBatches},           // far faster: reset from the cap
      {800, 0, 800, 2 * kStalePlanBatches},                        // a bad interval counts as the first
  };
  for (const Row& row : rows) {
    const PlanCost plan{.batch_size = 8,
                        .run_us = row.run_us,
                        .batches_since_timed = row.interval,
                        .stale_after_batches = row.interval};
    EXPECT_EQ(NextStaleAfterBatches(plan, row.new_run_us), row.expected)
        << "figure " << row.run_us << " interval " << row.interval << " new " << row.new_run_us;
  }
}

// A plan's figure after a run: a moving average in which a run counts at most kMaxPlanSampleFactor times the
// figure; a stale figure is replaced by a faster time only.
TEST(NextPlanRunUsTest, AveragesWithSpikesClampedAndReplacesAStaleFigureByAFasterTime) {
  struct Row {
    int64_t run_us;
    bool stale;
    int64_t sample_us, expected;
  };
  const std::vector<Row> rows = {
      {800, false, 800, 800},    // the same time
      {800, false, 1600, 900},   // twice the figure moves it by an eighth of the difference
      {800, false, 40000, 900},  // a preempted run counts as twice the figure, no more
      {800, false, 0, 700},      // faster runs move it down by an eighth of the difference
      {34, false, 38, 34},       // 34.5 us: under a microsecond moves it, rounded down
      {34, false, 42, 35},       // 35 us
      {1, false, 0, 1},          // never below 1
      {800, true, 100, 100},     // stale, faster: the new time alone
      {800, true, 0, 1},         // stale, faster, at least 1
      {800, true, 1600, 900},    // stale, slower: averaged like any run
      {800, true, 40000, 900},   // ... and clamped
      {800, false, -5, 700},     // a negative time counts as 0
      {0, false, 500, 500},      // no figure yet: the run sets it
  };
  for (const Row& row : rows) {
    const PlanCost plan{.batch_size = 8, .run_us = row.run_us};
    EXPECT_EQ(NextPlanRunUs(plan, row.sample_us, row.stale), row.expected)
        << "figure " << row.run_us << " stale " << row.stale << " sample " << row.sample_us;
  }
}

// With a stride of 4, a plan is timed on its fourth batch since its last timing, when it has no figure, and when
// its figure is stale; a stride of 1 times every run.
TEST(PlanRunIsTimedTest, TimesEveryStrideThRunAndEveryRunOfANewOrStalePlan) {
  struct Row {
    int64_t padded_items, since_timed, stale_after, stride;
    bool expected;
  };
  const std::vector<Row> rows = {
      {1, 0, kStalePlanBatches, 4, false},  // just timed
      {1, 2, kStalePlanBatches, 4, false},  // the third batch since
      {1, 3, kStalePlanBatches, 4, true},   // the fourth
      {1, 40, kStalePlanBatches, 4, true},  // a plan that runs rarely: each of its runs
      {2, 0, kStalePlanBatches, 4, true},   // no plan of 2 has a figure
      {8, 6, 6, 8, true},                   // stale before its stride
      {8, 5, 6, 8, false},                  // one batch before stale
      {1, 0, kStalePlanBatches, 1, true},   // stride 1: every run
  };
  for (const Row& row : rows) {
    const std::vector<PlanCost> plans = {{.batch_size = 1, .run_us = 100, .batches_since_timed = row.since_timed},
                                         {.batch_size = 8,
                                          .run_us = 700,
                                          .batches_since_timed = row.since_timed,
                                          .stale_after_batches = row.stale_after}};
    EXPECT_EQ(PlanRunIsTimed(plans, row.padded_items, row.stride), row.expected)
        << "plan " << row.padded_items << " since " << row.since_timed << " stale after " << row.stale_after
        << " stride " << row.stride;
  }
  EXPECT_TRUE(PlanRunIsTimed({}, 1, 4));
}

// Properties over many generated queues: never more than max items, FIFO prefix, every index accounted for once.
TEST(BatchPolicyPropertyTest, InvariantsHoldOnGeneratedQueues) {
  uint32_t seed = 12345;
  auto next = [&seed](uint32_t bound) {
    seed = seed * 1664525u + 1013904223u;
    return (seed >> 8) % bound;
  };
  for (int round = 0; round < 5000; ++round) {
    DynamicBatcherOptions options;
    options.max_batch_size = 1 + next(8);
    options.max_queue_delay_us = next(3) * 50;
    options.policy = next(2) == 0 ? BatchingPolicy::kAdaptive : BatchingPolicy::kFixedDelay;
    BatchLoad load{.item_interval_us = next(4) == 0 ? kNever : next(40),
                   .item_run_us = next(40),
                   .items_coming = next(3) == 0 ? next(4) : 0,
                   .recent_batch_items = next(6),
                   .plan_costs = {}};
    if (options.max_batch_size > 1 && next(2) == 0) {
      load.plan_costs = {{1, 1 + next(40)}, {options.max_batch_size, 1 + next(400)}};
    }
    for (int p = next(3); p > 0; --p) options.preferred_batch_sizes.push_back(1 + next(options.max_batch_size));
    std::vector<QueuedTaskInfo> queue;
    for (int i = next(12); i > 0; --i) {
      QueuedTaskInfo task = T(1 + next(options.max_batch_size), next(100));
      if (next(5) == 0) task.deadline_us = next(200);
      task.cancelled = next(9) == 0;
      queue.push_back(task);
    }
    const int64_t now_us = next(200);
    const BatchDecision d = DecideBatch(queue, now_us, next(4) == 0, options, load);
    SCOPED_TRACE("round " + std::to_string(round));

    std::vector<int> seen(queue.size(), 0);
    for (size_t i : d.run) ++seen[i];
    for (size_t i : d.expired) ++seen[i];
    for (size_t i : d.cancelled) ++seen[i];
    for (size_t i : d.invalid) ++seen[i];
    for (int n : seen) ASSERT_LE(n, 1);
    int64_t items = 0;
    for (size_t i : d.run) items += queue[i].num_items;
    ASSERT_EQ(items, d.batch_items);
    ASSERT_LE(items, options.max_batch_size);
    ASSERT_EQ(d.action == BatchDecision::Action::kRun, !d.run.empty());
    // The run set is a FIFO prefix of the tasks that were not dropped.
    std::vector<size_t> live;
    for (size_t i = 0; i < queue.size(); ++i) {
      const bool dropped = std::find(d.run.begin(), d.run.end(), i) == d.run.end() && seen[i] == 1;
      if (!dropped) live.push_back(i);
    }
    ASSERT_LE(d.run.size(), live.size());
    ASSERT_TRUE(std::equal(d.run.begin(), d.run.end(), live.begin())) << "run is not a FIFO prefix";
    if (d.action == BatchDecision::Action::kWait) {
      ASSERT_GT(d.wake_at_us, now_us);
    }
  }
}

}  // namespace
}  // namespace cnnserve
