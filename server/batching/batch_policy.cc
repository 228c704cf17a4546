#include "server/batching/batch_policy.h"

#include <algorithm>
#include <cstdlib>

#include "engine/common/units.h"

namespace cnnserve {
namespace {

bool IsPreferred(int64_t items, const std::vector<int64_t>& preferred) {
  return std::find(preferred.begin(), preferred.end(), items) != preferred.end();
}

// kAdaptive's price of a batch of `items` (batch_policy.h), in microseconds; 0 when unknown.
double CostUs(int64_t items, const BatchLoad& load, const DynamicBatcherOptions& options) {
  if (items <= 0) return 0;
  const int64_t padded = PaddedBatchItems(items, options);
  const PlanCost* nearest = nullptr;
  for (const PlanCost& plan : load.plan_costs) {
    if (plan.run_us <= 0) continue;
    if (plan.batch_size == padded) return static_cast<double>(plan.run_us);
    if (nearest == nullptr || std::abs(plan.batch_size - padded) < std::abs(nearest->batch_size - padded)) {
      nearest = &plan;
    }
  }
  if (nearest != nullptr) {
    return static_cast<double>(nearest->run_us) * static_cast<double>(padded) /
           static_cast<double>(nearest->batch_size);
  }
  return static_cast<double>(std::max<int64_t>(load.item_run_us, 0)) * static_cast<double>(padded);
}

// The plan of exactly `padded_items` in `plans`; null when none has a figure.
const PlanCost* PlanOfSize(const std::vector<PlanCost>& plans, int64_t padded_items) {
  for (const PlanCost& plan : plans) {
    if (plan.batch_size == padded_items) return &plan;
  }
  return nullptr;
}

// Whether the plan that `items` pad to has a stale cost figure.
bool PlanIsStale(int64_t items, const BatchLoad& load, const DynamicBatcherOptions& options) {
  const PlanCost* plan = PlanOfSize(load.plan_costs, PaddedBatchItems(items, options));
  return plan != nullptr && IsStale(*plan);
}

// Items per microsecond of each prefix of the candidate (`counts`: items of each task, in FIFO order; prefix i
// holds tasks 0..i), priced by CostUs; empty when a prefix has no cost figure.
std::vector<double> PrefixRates(const std::vector<int64_t>& counts, const BatchLoad& load,
                                const DynamicBatcherOptions& options) {
  std::vector<double> rates;
  int64_t items = 0;
  for (int64_t count : counts) {
    items += count;
    const double cost = CostUs(items, load, options);
    if (cost <= 0) return {};
    rates.push_back(static_cast<double>(items) / cost);
  }
  return rates;
}

// The highest of `rates`; 0 when empty.
double BestRate(const std::vector<double>& rates) {
  return rates.empty() ? 0 : *std::max_element(rates.begin(), rates.end());
}

// What running `total` items as one batch saves against running them at `item_cost_us` each (the best price per
// item of running now what is queued); 0 or less when it saves nothing, 0 when unknown.
double GainUs(int64_t total, double item_cost_us, const BatchLoad& load, const DynamicBatcherOptions& options) {
  if (item_cost_us <= 0) return 0;
  return static_cast<double>(total) * item_cost_us - CostUs(total, load, options);
}

// kAdaptive's wait (batch_policy.h): kInfiniteFuture to run now. `item_cost_us`: the best price per item of
// running now (over the candidate's prefixes), 0 when unknown.
int64_t AdaptiveWakeUs(int64_t items, double item_cost_us, int64_t newest_enqueue_us, int64_t limit_us,
                       int64_t now_us, const BatchLoad& load, const DynamicBatcherOptions& options) {
  const int64_t room = options.max_batch_size - items;
  const auto pays_more_than = [&](int64_t more, double wait_us) {
    return GainUs(items + more, item_cost_us, load, options) > wait_us;
  };
  const double delay_us = static_cast<double>(options.max_queue_delay_us);
  if (load.items_coming > 0 && pays_more_than(std::min(load.items_coming, room), delay_us)) return limit_us;
  if (load.recent_batch_items > items &&
      pays_more_than(std::min(load.recent_batch_items, options.max_batch_size) - items, delay_us)) {
    return limit_us;
  }
  if (load.item_run_us <= 0 || load.item_interval_us >= load.item_run_us) return Clock::kInfiniteFuture;
  int64_t target = options.max_batch_size;
  for (int64_t size : options.preferred_batch_sizes) {
    if (size > items && size < target) target = size;
  }
  const int64_t due_us = AddMicros(newest_enqueue_us, (target - items) * load.item_interval_us);
  if (due_us >= limit_us) return Clock::kInfiniteFuture;
  return pays_more_than(target - items, static_cast<double>(due_us - now_us)) ? due_us : Clock::kInfiniteFuture;
}

// kAdaptive's size: how many of the candidate's tasks (`counts`: items of each, in FIFO order, `items` in all;
// `rates`: their PrefixRates) to run.
size_t AdaptiveRunCount(const std::vector<int64_t>& counts, int64_t items, const std::vector<double>& rates,
                        const BatchLoad& load, const DynamicBatcherOptions& options) {
  constexpr double kWithin = 0.95;          // a longer prefix this close to the best rate is preferred
  if (rates.empty()) return counts.size();  // no cost figure: the whole candidate
  const double best = BestRate(rates);
  size_t chosen = counts.size();
  while (chosen > 0 && rates[chosen - 1] < kWithin * best) --chosen;
  if (chosen < counts.size() && PlanIsStale(items, load, options)) return counts.size();
  return chosen;
}
}  // namespace

int64_t NextStaleAfterBatches(const PlanCost& stale, int64_t new_run_us) {
  constexpr int64_t kConfirmDivisor = 2;  // confirmed: the new time is at least half the old figure
  if (new_run_us * kConfirmDivisor < stale.run_us) return kStalePlanBatches;
  return std::min(std::max(stale.stale_after_batches, kStalePlanBatches) * 2, kMaxStalePlanBatches);
}

int64_t NextPlanRunUs(const PlanCost& plan, int64_t sample_us, bool stale) {
  const int64_t sample = std::max<int64_t>(0, sample_us);
  if (plan.run_us <= 0 || (stale && sample < plan.run_us)) return std::max<int64_t>(1, sample);
  // In nanoseconds: the average moves by (sample - figure) / kPlanCostWindow, which in microseconds would stall
  // within kPlanCostWindow us of a cheap plan's cost.
  const int64_t figure_ns = plan.run_us * kNanosPerMicro;
  const int64_t sample_ns = std::min(sample, kMaxPlanSampleFactor * plan.run_us) * kNanosPerMicro;
  return std::max<int64_t>(1, (figure_ns + (sample_ns - figure_ns) / kPlanCostWindow) / kNanosPerMicro);
}

bool PlanRunIsTimed(const std::vector<PlanCost>& plans, int64_t padded_items, int64_t stride) {
  const PlanCost* plan = PlanOfSize(plans, padded_items);
  return plan == nullptr || IsStale(*plan) || plan->batches_since_timed + 1 >= stride;
}

int64_t PaddedBatchItems(int64_t items, const DynamicBatcherOptions& options) {
  int64_t padded = options.max_batch_size;
  for (int64_t size : options.preferred_batch_sizes) {
    if (size >= items && size < padded) padded = size;
  }
  return padded;
}

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

  const bool full = items == max_items || count < live.size();
  if (options.policy == BatchingPolicy::kAdaptive) {
    std::vector<int64_t> counts;
    for (size_t i = 0; i < count; ++i) counts.push_back(queue[live[i]].num_items);
    const std::vector<double> rates = PrefixRates(counts, load, options);
    const double best_rate = BestRate(rates);
    const double item_cost_us = best_rate > 0 ? 1 / best_rate : 0;
    const int64_t delay_start_us = std::max(oldest_enqueue_us, load.instance_free_since_us);
    const int64_t limit_us = std::min(AddMicros(delay_start_us, delay_us), earliest_deadline_us);
    const int64_t wake_us =
        full || flush ? Clock::kInfiniteFuture
                      : AdaptiveWakeUs(items, item_cost_us, newest_enqueue_us, limit_us, now_us, load, options);
    if (wake_us != Clock::kInfiniteFuture && wake_us > now_us) {
      decision.action = BatchDecision::Action::kWait;
      decision.wake_at_us = wake_us;
      return decision;
    }
    count = AdaptiveRunCount(counts, items, rates, load, options);
    decision.action = BatchDecision::Action::kRun;
    decision.run.assign(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(count));
    decision.batch_items = 0;
    for (size_t i = 0; i < count; ++i) decision.batch_items += counts[i];
    return decision;
  }

  // Rule 4.
  const int64_t delay_end_us = AddMicros(oldest_enqueue_us, delay_us);
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
