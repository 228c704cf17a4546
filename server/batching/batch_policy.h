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
// Rules 4 and 5 are the kFixedDelay policy (the default). kAdaptive replaces them: the worker that decides is a
// free instance, so it runs the candidate at once (work-conserving: under load, tasks gather while every
// instance is busy and a freed one takes everything that fits) unless waiting is expected to pay. When the batch
// is not full and flush is not set, it waits
//   (a) while `load.items_coming` > 0 (requests for this model admitted and still being decoded: they are on
//       their way), until min(oldest enqueue time + max_queue_delay_us, earliest live deadline), woken by each
//       arrival to decide again; or else
//   (b) when `load` says items arrive faster than the instance serves them (item_interval_us < item_run_us) and,
//       at that rate, the items missing to the next preferred size above the candidate (or max_batch_size) are
//       due, counted from the newest live task's arrival, before that same limit: until they are due (if they do
//       not come, the next decision after that time runs).
// Otherwise it runs at once. Size: the whole candidate (a batch of a size without a plan is padded by the runner).
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

// What the batcher measures of its traffic, for kAdaptive.
struct BatchLoad {
  // Recent mean time between arriving items; kInfiniteFuture while unknown.
  int64_t item_interval_us = Clock::kInfiniteFuture;
  // Recent mean run time per item of a batch; 0 while unknown.
  int64_t item_run_us = 0;
  // Items of requests admitted for this model and not yet queued (waiting for or in decoding).
  int64_t items_coming = 0;
};

// `queue` is in FIFO order (index 0 is the oldest). Only policy, max_batch_size, max_queue_delay_us and
// preferred_batch_sizes of `options` are read.
BatchDecision DecideBatch(std::span<const QueuedTaskInfo> queue, int64_t now_us, bool flush,
                          const DynamicBatcherOptions& options, const BatchLoad& load = {});

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_BATCH_POLICY_H_
