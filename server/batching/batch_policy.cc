#include "server/batching/batch_policy.h"

#include <algorithm>

namespace cnnserve {
namespace {

bool IsPreferred(int64_t items, const std::vector<int64_t>& preferred) {
  return std::find(preferred.begin(), preferred.end(), items) != preferred.end();
}

// kAdaptive's wait (batch_policy.h): the time the items up to the next preferred size above `items` are due, if
// items arrive faster than they are served and that time is before `limit_us`; else kInfiniteFuture (run now).
int64_t AdaptiveWakeUs(int64_t items, int64_t newest_enqueue_us, int64_t limit_us, const BatchLoad& load,
                       const DynamicBatcherOptions& options) {
  if (load.item_run_us <= 0 || load.item_interval_us >= load.item_run_us) return Clock::kInfiniteFuture;
  int64_t target = options.max_batch_size;
  for (int64_t size : options.preferred_batch_sizes) {
    if (size > items && size < target) target = size;
  }
  const int64_t due_us = AddMicros(newest_enqueue_us, (target - items) * load.item_interval_us);
  return due_us < limit_us ? due_us : Clock::kInfiniteFuture;
}

}  // namespace

BatchDecision DecideBatch(std::span<const QueuedTaskInfo> queue, int64_t now_us, bool flush,
                          const DynamicBatcherOptions& options, const BatchLoad& load) {
  BatchDecision decision;
  const int64_t max_items = options.max_batch_size;
  const int64_t delay_us = std::max<int64_t>(options.max_queue_delay_us, 0);

  // Rule 1: drops. Collect the live tasks, the oldest enqueue time and the earliest deadline among them.
  std::vector<size_t> live;
  live.reserve(queue.size());
  int64_t oldest_enqueue_us = Clock::kInfiniteFuture;
  int64_t newest_enqueue_us = 0;
  int64_t earliest_deadline_us = Clock::kInfiniteFuture;
  for (size_t i = 0; i < queue.size(); ++i) {
    const QueuedTaskInfo& task = queue[i];
    if (task.cancelled) {
      decision.cancelled.push_back(i);
    } else if (task.deadline_us <= now_us) {
      decision.expired.push_back(i);
    } else if (task.num_items < 1 || task.num_items > max_items) {
      decision.invalid.push_back(i);
    } else {
      live.push_back(i);
      oldest_enqueue_us = std::min(oldest_enqueue_us, task.enqueue_time_us);
      newest_enqueue_us = std::max(newest_enqueue_us, task.enqueue_time_us);
      earliest_deadline_us = std::min(earliest_deadline_us, task.deadline_us);
    }
  }
  // Rule 2.
  if (live.empty()) return decision;

  // Rule 3: the candidate prefix, remembering the longest prefix that sums to a preferred size.
  int64_t items = 0;
  size_t count = 0;
  int64_t preferred_items = 0;
  size_t preferred_count = 0;
  for (; count < live.size(); ++count) {
    const int64_t n = queue[live[count]].num_items;
    if (items + n > max_items) break;
    items += n;
    if (IsPreferred(items, options.preferred_batch_sizes)) {
      preferred_items = items;
      preferred_count = count + 1;
    }
  }

  const int64_t delay_end_us = AddMicros(oldest_enqueue_us, delay_us);
  const bool full = items == max_items || count < live.size();
  if (options.policy == BatchingPolicy::kAdaptive) {
    const int64_t limit_us = std::min(delay_end_us, earliest_deadline_us);
    int64_t wake_us = Clock::kInfiniteFuture;
    if (!full && !flush) {
      wake_us = load.items_coming > 0 ? limit_us : AdaptiveWakeUs(items, newest_enqueue_us, limit_us, load, options);
    }
    if (wake_us != Clock::kInfiniteFuture && wake_us > now_us) {
      decision.action = BatchDecision::Action::kWait;
      decision.wake_at_us = wake_us;
      return decision;
    }
    decision.action = BatchDecision::Action::kRun;
    decision.run.assign(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(count));
    decision.batch_items = items;
    return decision;
  }

  // Rule 4.
  const bool delay_over = delay_us == 0 || now_us >= delay_end_us;
  if (full || preferred_count > 0 || delay_over || flush) {
    if (items != max_items && preferred_count > 0) {
      count = preferred_count;
      items = preferred_items;
    }
    decision.action = BatchDecision::Action::kRun;
    decision.run.assign(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(count));
    decision.batch_items = items;
    return decision;
  }

  // Rule 5.
  decision.action = BatchDecision::Action::kWait;
  decision.wake_at_us = std::min(delay_end_us, earliest_deadline_us);
  return decision;
}

}  // namespace cnnserve
