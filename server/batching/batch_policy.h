// DecideBatch: the dynamic batcher's policy as a pure function (no clock, no locks, no threads), so that every
// rule is tested from a table. The batcher's worker threads call it with a snapshot of the queue and do what it
// says; nothing else in the batcher decides when to run or what goes into a batch.
//
// Rules, in order (all sizes in items; "live" tasks are those not dropped):
//  1. Drop: a cancelled task -> `cancelled`; else a task whose deadline has been reached (deadline_us <= now_us)
//     -> `expired`; else a task with num_items outside [1, max_batch_size] -> `invalid`. Anywhere in the queue.
//  2. No live task -> kIdle (wait for a new task).
//  3. The candidate is the longest FIFO prefix of live tasks whose items fit in max_batch_size (K tasks, S items).
//     Tasks are never reordered: a task that does not fit ends the candidate.
//  4. Run now (kRun) when any of:
//       full:      S == max_batch_size, or a next live task exists that does not fit (the batch cannot grow);
//       preferred: some prefix of the candidate sums exactly to a preferred size;
//       delay:     max_queue_delay_us == 0, or now_us >= (oldest live enqueue time) + max_queue_delay_us;
//       flush:     `flush` is set (shutting down: no more tasks will come).
//     Size: the whole candidate if S == max_batch_size; else the longest prefix whose item count is a preferred
//     size, if any (this is "the largest preferred size <= available"); else the whole candidate.
//  5. Otherwise kWait until min(oldest live enqueue time + max_queue_delay_us, earliest live deadline), or until
//     a new task arrives, whichever is first; then decide again.
// Rules 4 and 5 are the kFixedDelay policy (DynamicBatcherOptions' default). kAdaptive (a model config's default)
// replaces them: the worker that decides is a
// free instance, so it runs at once (work-conserving: under load, tasks gather while every instance is busy and a
// freed one takes what is there) unless waiting is expected to pay. It prices a batch of n items by what its plan
// costs: the run time of the plan it is padded to (the smallest preferred size >= n, else max_batch_size; with
// kAdaptive the preferred sizes are the compiled plans), from `load.plan_costs` (measured), else scaled linearly
// from the nearest measured plan, else n * load.item_run_us, else unknown. Running now, the size rule below
// gets the best rate of the candidate's prefixes: u, the lowest cost per item. Gain(S, m) = (S + m) * u -
// cost(S + m): what waiting for m more items and running all S + m together saves against running them at u
// (0 or less when the larger batch is no cheaper per item than what runs now: a model whose batch 8 costs more
// per item than 1 never waits, however much padding a queued 2 would need). When the batch is not full and flush
// is not set, it waits
//   (a) while `load.items_coming` > 0 (requests for this model admitted and still being decoded: they are on their
//       way) and Gain(S, the coming items that fit) exceeds max_queue_delay_us (the longest it would wait), until
//       min(start + max_queue_delay_us, earliest live deadline), woken by each arrival, where start is the later
//       of the oldest live task's enqueue time and `load.instance_free_since_us` (so the wait is bounded from when
//       the instance could first have run the task: tasks that gathered while it was busy may still wait for
//       the requests being decoded behind them, which keeps closed-loop clients in full batches); or else
//   (r) while S < `load.recent_batch_items` (recent batches were larger: clients in a closed loop send their next
//       requests as their answers arrive, so they come in bursts the arrival rate does not see) and Gain(S, the
//       missing items) exceeds max_queue_delay_us, until that same limit, woken by each arrival; or else
//   (b) when `load` says items arrive faster than the instance serves them (item_interval_us < item_run_us) and,
//       at that rate, the items missing to the next preferred size above the candidate (or max_batch_size) are
//       due, counted from the newest live task's arrival, before that same limit, and Gain(S, the missing items)
//       exceeds the wait until they are due: until then (if they do not come, the next decision after that runs).
// Otherwise it runs now. Size: of the candidate's prefixes (task boundaries), the one with the most items per
// unit of cost, the longest among those within 5% of the best; so a batch is not padded to a larger plan when a
// smaller prefix plus the rest in the next batch costs less (the rest stays queued and runs next). Without any
// cost figure, the whole candidate; also the whole candidate when the plan it pads to has a stale cost
// (PlanCost::batches_since_timed >= PlanCost::stale_after_batches), so that its cost is timed again.
// Thread-safety: a pure function.
#ifndef CNNSERVE_SERVER_BATCHING_BATCH_POLICY_H_
#define CNNSERVE_SERVER_BATCHING_BATCH_POLICY_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "server/batching/clock.h"
#include "server/batching/options.h"

namespace cnnserve {

// What the policy knows about one queued task (the batcher evaluates the cancellation check into `cancelled`).
struct QueuedTaskInfo {
  int64_t num_items = 1;
  int64_t enqueue_time_us = 0;
  int64_t deadline_us = Clock::kInfiniteFuture;
  bool cancelled = false;
};

struct BatchDecision {
  enum class Action { kIdle, kRun, kWait };

  Action action = Action::kIdle;
  // kRun: queue indices of the tasks to run now, ascending (the first K live tasks), and their total items.
  std::vector<size_t> run;
  int64_t batch_items = 0;
  // kWait: decide again at this time (or earlier, when a task arrives). kInfiniteFuture otherwise.
  int64_t wake_at_us = Clock::kInfiniteFuture;
  // Queue indices (ascending) to finish without running, with any action: CANCELLED, DEADLINE_EXCEEDED,
  // INVALID_ARGUMENT.
  std::vector<size_t> cancelled;
  std::vector<size_t> expired;
  std::vector<size_t> invalid;
};

// After this many batches on other plans a plan's cost is stale: kAdaptive runs the whole candidate once on it
// even when the stale figure says a shorter prefix is cheaper, and the batcher takes that run's time as the
// plan's new cost when it is faster (not averaged with the stale one; NextPlanRunUs). Without it, a plan timed
// once during a slow moment (warm-up among other models' compiles, a preempted run) would never run again and its
// cost never be corrected.
inline constexpr int64_t kStalePlanBatches = 64;
// Each re-timing that confirms the figure doubles that plan's interval, up to this many batches: a plan that is
// really too slow for the traffic (2 images padded to a 64-image plan) is padded to ever more rarely, instead of
// once every kStalePlanBatches batches for good.
inline constexpr int64_t kMaxStalePlanBatches = 4096;

// The measured run time of one compiled plan (a batch padded to batch_size items). The batcher times a run by the
// CPU time of the thread that ran it when the engine runs on that thread (BatchRunner::RunsOnCallingThread), so
// that a run preempted by the front end on a busy machine does not count the time it lost, else by the wall time.
struct PlanCost {
  int64_t batch_size = 1;
  int64_t run_us = 0;
  // Batches the batcher has run on other plans since this one was last timed (0: just timed, or at warm-up).
  int64_t batches_since_timed = 0;
  // The figure is stale once batches_since_timed reaches this (kStalePlanBatches, doubled by each re-timing that
  // confirmed it; see NextStaleAfterBatches).
  int64_t stale_after_batches = kStalePlanBatches;
};

inline bool IsStale(const PlanCost& plan) { return plan.batches_since_timed >= plan.stale_after_batches; }

// The interval of a plan after a re-timing of its stale figure took `new_run_us` (the figure: NextPlanRunUs):
// doubled (up to kMaxStalePlanBatches) when the new time confirms the old figure, i.e. is at least half of it (the
// run times of a loaded server vary widely from batch to batch), else back to kStalePlanBatches (the plan got
// much faster, so look again as soon as for a fresh figure).
int64_t NextStaleAfterBatches(const PlanCost& stale, int64_t new_run_us);

// The figure of a plan after a run on it took `sample_us` (`stale`: the figure was stale, see above). A moving
// average over about kPlanCostWindow runs in which one run counts at most kMaxPlanSampleFactor times the figure:
// on a busy machine a run that is preempted takes a whole time slice longer, and one such run of a cheap plan,
// averaged in unclamped, would make it look dearer per item than larger plans for the next several batches (the
// policy would pad batches for nothing). A stale figure is replaced by a faster time (it was taken in a slow
// moment) and otherwise averaged the same way. Never below 1.
inline constexpr int64_t kPlanCostWindow = 8;
inline constexpr int64_t kMaxPlanSampleFactor = 2;
int64_t NextPlanRunUs(const PlanCost& plan, int64_t sample_us, bool stale);

// Whether a run on the plan of `padded_items` (ascending `plans`, as BatchLoad::plan_costs) is to be timed when
// only every `stride`-th is (DynamicBatcherOptions::plan_timing_stride): when no plan of that size has a figure,
// when its figure is stale, or when this run is at least the stride-th batch since the plan was last timed (a plan
// that runs on every batch is timed on every stride-th; one that runs rarely, on each of its runs).
bool PlanRunIsTimed(const std::vector<PlanCost>& plans, int64_t padded_items, int64_t stride);

// What the batcher measures of its traffic, for kAdaptive.
struct BatchLoad {
  // Recent mean time between arriving items; kInfiniteFuture while unknown.
  int64_t item_interval_us = Clock::kInfiniteFuture;
  // Recent mean run time per item of a batch; 0 while unknown.
  int64_t item_run_us = 0;
  // Items of requests admitted for this model and not yet queued (waiting for or in decoding).
  int64_t items_coming = 0;
  // Recent mean items per batch, rounded down (a moving average); 0 while unknown.
  int64_t recent_batch_items = 0;
  // Run time per plan size, ascending by batch_size, measured plans only (each > 0).
  std::vector<PlanCost> plan_costs;
  // When the instance that would run the batch finished its previous one; 0 when it has not run any.
  int64_t instance_free_since_us = 0;
};

// The plan a batch of `items` runs on under kAdaptive: the smallest preferred size >= items, else max_batch_size.
int64_t PaddedBatchItems(int64_t items, const DynamicBatcherOptions& options);

// `queue` is in FIFO order (index 0 is the oldest). Only policy, max_batch_size, max_queue_delay_us and
// preferred_batch_sizes of `options` are read.
BatchDecision DecideBatch(std::span<const QueuedTaskInfo> queue, int64_t now_us, bool flush,
                          const DynamicBatcherOptions& options, const BatchLoad& load = {});

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_BATCH_POLICY_H_
