#include "server/batching/dynamic_batcher.h"

#include <algorithm>
#include <exception>
#include <string>
#include <utility>

#include "engine/common/thread_name.h"
#include "engine/common/units.h"
#include "server/batching/admission_policy.h"

namespace cnnserve {
namespace {

constexpr int64_t kServiceTimeWindow = 8;  // batches the service-time average spans (roughly)

void Bump(std::atomic<int64_t>& counter, int64_t n = 1) { counter.fetch_add(n, std::memory_order_relaxed); }
int64_t Read(const std::atomic<int64_t>& counter) { return counter.load(std::memory_order_relaxed); }

// An exponential moving average over about the last kServiceTimeWindow batches; the first sample (old_ns == 0)
// sets it. Never below 1 once set.
int64_t MovingAverage(int64_t old_ns, int64_t sample_ns) {
  const int64_t new_ns = old_ns == 0 ? sample_ns : old_ns + (sample_ns - old_ns) / kServiceTimeWindow;
  return std::max<int64_t>(1, new_ns);
}

// Finishes every task of `tasks` with `status` and destroys it.
void FinishAll(std::vector<std::unique_ptr<Task>>& tasks, const Status& status) {
  for (std::unique_ptr<Task>& task : tasks) {
    task->Finish(status);
    task.reset();
  }
  tasks.clear();
}

}  // namespace

DynamicBatcher::Counters::Counters(int64_t max_batch_size)
    : batches_by_size(static_cast<size_t>(max_batch_size) + 1) {}

StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(const DynamicBatcherOptions& options,
                                                                 const BatchRunnerFactory& runner_factory) {
  CNN_RETURN_IF_ERROR(ValidateDynamicBatcherOptions(options));
  if (!runner_factory) return InvalidArgumentError("runner_factory is empty");
  std::vector<std::unique_ptr<BatchRunner>> runners;
  for (int i = 0; i < options.num_instances; ++i) {
    StatusOr<std::unique_ptr<BatchRunner>> runner = runner_factory(i);
    if (!runner.ok()) return runner.status().WithContext("creating batch runner " + std::to_string(i));
    if (*runner == nullptr) return InternalError("runner factory returned null for instance " + std::to_string(i));
    runners.push_back(std::move(*runner));
  }
  std::unique_ptr<DynamicBatcher> batcher(new DynamicBatcher(options, std::move(runners)));
  for (const PlanCost& plan : batcher->runners_.front()->PlanCosts()) {
    if (plan.batch_size >= 1 && plan.run_us > 0) batcher->plan_costs_.push_back(plan);
  }
  batcher->instance_busy_.assign(batcher->runners_.size(), 0);
  batcher->instance_free_since_us_.assign(batcher->runners_.size(), 0);
  for (size_t i = 0; i < batcher->runners_.size(); ++i) {
    batcher->finishers_.push_back(
        options.overlap_answers ? std::make_unique<HandOffThread>("reply:" + options.name) : nullptr);
    batcher->workers_.emplace_back(&DynamicBatcher::WorkerLoop, batcher.get(), i,
                                   batcher->finishers_.back().get());
  }
  return batcher;
}

DynamicBatcher::DynamicBatcher(const DynamicBatcherOptions& options,
                               std::vector<std::unique_ptr<BatchRunner>> runners)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      runners_(std::move(runners)),
      counters_(options.max_batch_size) {}

DynamicBatcher::~DynamicBatcher() {
  // Shutdown waits for (or performs) the one shutdown; with a deadline of "now" nothing queued waits.
  (void)Drain(clock_->NowMicros(), UnavailableError("shutting down: task not run"));
}

Status DynamicBatcher::Schedule(std::unique_ptr<Task>& task) {
  if (task == nullptr) {
    Bump(counters_.tasks_rejected_invalid);
    return InvalidArgumentError("Schedule: task is null");
  }
  const int64_t items = task->num_items();
  if (items < 1) {
    Bump(counters_.tasks_rejected_invalid);
    return InvalidArgumentError("task has " + std::to_string(items) + " items; must be >= 1");
  }
  if (items > options_.max_batch_size) {
    Bump(counters_.tasks_rejected_invalid);
    return InvalidArgumentError("batch of " + std::to_string(items) + " items exceeds max_batch_size " +
                                std::to_string(options_.max_batch_size));
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t now_us = clock_->NowMicros();
    CNN_RETURN_IF_ERROR(AdmitLocked(1, items, task->deadline_us(), now_us));
    task->set_enqueue_time_us(now_us);
    RecordArrivalLocked(now_us, items);
    queue_.push_back(std::move(task));
    queued_items_ += items;
    UpdateQueueDepthLocked();
    Bump(counters_.tasks_admitted);
    if (RunInline(lock)) return OkStatus();
  }
  work_cv_.notify_one();
  return OkStatus();
}

bool DynamicBatcher::RunInline(std::unique_lock<std::mutex>& lock) {
  if (options_.max_inline_run_us <= 0 || queue_.size() != 1 || shutting_down_) return false;
  const auto idle = std::find(instance_busy_.begin(), instance_busy_.end(), 0);
  if (idle == instance_busy_.end()) return false;
  if (ExpectedRunMicrosLocked(queue_.front()->num_items()) > options_.max_inline_run_us) return false;
  std::vector<QueuedTaskInfo> snapshot;
  const size_t instance = static_cast<size_t>(idle - instance_busy_.begin());
  const BatchDecision decision = DecideLocked(snapshot, instance);
  if (decision.action != BatchDecision::Action::kRun) return false;  // waiting, or dropping: a worker's job
  TakenTasks taken = TakeLocked(decision);
  const int64_t dropped = TookLocked(taken, instance);
  lock.unlock();
  FinishDropped(taken);
  RunOutcome outcome = Run(runners_[instance].get(), taken);
  if (!taken.batch.empty()) Bump(counters_.batches_run_inline);
  lock.lock();
  RanLocked(taken, outcome, dropped, instance);
  // Tasks that came meanwhile went to the queue; the instance's worker may be waiting for its runner.
  const bool wake = !queue_.empty() || shutting_down_;
  lock.unlock();
  if (wake) work_cv_.notify_all();
  if (!taken.batch.empty()) FinishBatch(taken.batch, outcome);
  return true;
}

int64_t DynamicBatcher::ExpectedRunMicrosLocked(int64_t items) const {
  const int64_t padded = PaddedBatchItems(items, options_);
  for (const PlanCost& plan : plan_costs_) {
    if (plan.batch_size >= padded) return plan.run_us;
  }
  return item_service_ns() * items / kNanosPerMicro;
}

BatchDecision DynamicBatcher::DecideLocked(std::vector<QueuedTaskInfo>& snapshot, size_t instance) const {
  snapshot.clear();
  for (const std::unique_ptr<Task>& task : queue_) {
    snapshot.push_back(QueuedTaskInfo{.num_items = task->num_items(),
                                      .enqueue_time_us = task->enqueue_time_us(),
                                      .deadline_us = task->deadline_us(),
                                      .cancelled = task->IsCancelled()});
  }
  const BatchLoad load{.item_interval_us = item_interval_us_,
                       .item_run_us = item_service_ns() / kNanosPerMicro,
                       .items_coming = incoming_items_ + decoding_items_,
                       .recent_batch_items = recent_batch_milli_ / 1000,
                       .plan_costs = plan_costs_,
                       .instance_free_since_us = instance_free_since_us_[instance]};
  return DecideBatch(snapshot, clock_->NowMicros(), shutting_down_, options_, load);
}

int64_t DynamicBatcher::TookLocked(const TakenTasks& taken, size_t instance) {
  tasks_in_hand_ += static_cast<int64_t>(taken.size());
  running_items_ += taken.batch_items;
  instance_busy_[instance] = 1;
  return static_cast<int64_t>(taken.size() - taken.batch.size());
}

void DynamicBatcher::RanLocked(const TakenTasks& taken, const RunOutcome& outcome, int64_t dropped,
                               size_t instance) {
  // Only kAdaptive reads plan costs, and only there are the preferred sizes the compiled plans.
  if (outcome.overall.ok() && !taken.batch.empty() && options_.policy == BatchingPolicy::kAdaptive)
    RecordPlanCostLocked(taken.batch_items, outcome.plan_us);
  if (taken.batch_items > 0) recent_batch_milli_ = MovingAverage(recent_batch_milli_, taken.batch_items * 1000);
  tasks_in_hand_ -= dropped;
  running_items_ -= taken.batch_items;
  instance_busy_[instance] = 0;
  if (!taken.batch.empty()) instance_free_since_us_[instance] = clock_->NowMicros();
  if (shutting_down_) progress_cv_.notify_all();
}

Status DynamicBatcher::CheckAdmission(int64_t num_tasks, int64_t items, int64_t deadline_us) {
  std::lock_guard<std::mutex> lock(mu_);
  return AdmitLocked(num_tasks, items, deadline_us, clock_->NowMicros());
}

void DynamicBatcher::AddIncoming(int64_t items) { AddComing(&incoming_items_, items); }

void DynamicBatcher::AddDecoding(int64_t items) { AddComing(&decoding_items_, items); }

void DynamicBatcher::AddComing(int64_t* counter, int64_t items) {
  bool decide_again = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    *counter = std::max<int64_t>(0, *counter + items);
    // Only a worker with tasks queued waits on a decision that counts these items; with none queued, workers
    // sleep until Schedule, and a wake-up here would cost a context switch per request for nothing.
    decide_again = items < 0 && !queue_.empty();
  }
  if (decide_again) work_cv_.notify_one();
}

int64_t DynamicBatcher::ExpectedWorkMicros(int64_t items) const {
  std::lock_guard<std::mutex> lock(mu_);
  const AdmissionSnapshot snapshot{.queued_tasks = 0,
                                   .queued_items = queued_items_ + incoming_items_,
                                   .running_items = running_items_,
                                   .item_service_ns = item_work_ns(),
                                   .num_instances = options_.num_instances,
                                   .max_queue_size = 1};
  constexpr int64_t kNow = 0;
  return DecideAdmission(snapshot, items, kNow, Clock::kInfiniteFuture).expected_finish_us - kNow;
}

Status DynamicBatcher::AdmitLocked(int64_t num_tasks, int64_t items, int64_t deadline_us, int64_t now_us) {
  if (shutting_down_) {
    Bump(counters_.tasks_rejected_shutdown);
    return UnavailableError("shutting down: not accepting new tasks");
  }
  if (deadline_us <= now_us) {
    Bump(counters_.tasks_rejected_expired);
    return DeadlineExceededError("deadline passed before the task was queued");
  }
  const AdmissionSnapshot snapshot{.queued_tasks = static_cast<int64_t>(queue_.size()) + num_tasks - 1,
                                   .queued_items = queued_items_ + incoming_items_,
                                   .running_items = running_items_,
                                   .item_service_ns = item_work_ns(),
                                   .num_instances = options_.num_instances,
                                   .max_queue_size = options_.max_queue_size};
  const AdmissionDecision decision = DecideAdmission(snapshot, items, now_us, deadline_us);
  switch (decision.action) {
    case AdmissionDecision::Action::kAdmit:
      return OkStatus();
    case AdmissionDecision::Action::kQueueFull:
      Bump(counters_.tasks_rejected_queue_full);
      return UnavailableError("queue full: max_queue_size " + std::to_string(options_.max_queue_size) + " tasks");
    case AdmissionDecision::Action::kMissesDeadline:
      Bump(counters_.tasks_rejected_overloaded);
      return UnavailableError(
          "overloaded: the " + std::to_string(queued_items_ + incoming_items_ + running_items_) +
          " images ahead would take about " + std::to_string(decision.expected_wait_us / kMicrosPerMilli) +
          " ms, past the deadline in " + std::to_string((deadline_us - now_us) / kMicrosPerMilli) +
          " ms; retry later or with a longer deadline");
  }
  return InternalError("unknown admission decision");
}

void DynamicBatcher::RecordServiceTime(int64_t run_us, int64_t items) {
  if (items <= 0 || run_us < 0) return;
  item_service_ns_.store(
      MovingAverage(item_service_ns_.load(std::memory_order_relaxed), run_us * kNanosPerMicro / items),
      std::memory_order_relaxed);
}

void DynamicBatcher::RecordCycleTime(int64_t cycle_us, int64_t items) {
  if (items <= 0 || cycle_us < 0) return;
  item_cycle_ns_.store(
      MovingAverage(item_cycle_ns_.load(std::memory_order_relaxed), cycle_us * kNanosPerMicro / items),
      std::memory_order_relaxed);
}

void DynamicBatcher::RecordPlanCostLocked(int64_t items, int64_t run_us) {
  if (items <= 0) return;
  const int64_t padded = PaddedBatchItems(items, options_);
  const auto at = std::lower_bound(plan_costs_.begin(), plan_costs_.end(), padded,
                                   [](const PlanCost& plan, int64_t size) { return plan.batch_size < size; });
  const bool known = at != plan_costs_.end() && at->batch_size == padded;
  const bool stale = known && IsStale(*at);
  for (PlanCost& plan : plan_costs_) ++plan.batches_since_timed;
  if (run_us < 0) return;
  if (known) {
    const int64_t sample_us = std::max<int64_t>(0, run_us);
    if (stale) at->stale_after_batches = NextStaleAfterBatches(*at, sample_us);
    at->run_us = NextPlanRunUs(*at, sample_us, stale);
    at->batches_since_timed = 0;
  } else {
    plan_costs_.insert(at, PlanCost{.batch_size = padded, .run_us = std::max<int64_t>(1, run_us)});
  }
}

int64_t DynamicBatcher::item_work_ns() const {
  return std::max(item_service_ns(), item_cycle_ns_.load(std::memory_order_relaxed));
}

void DynamicBatcher::RecordArrivalLocked(int64_t now_us, int64_t items) {
  if (last_arrival_us_ >= 0) {
    const int64_t sample_us = std::max<int64_t>(0, now_us - last_arrival_us_) / items;
    // The same moving average as the service time; the first gap sets it.
    item_interval_us_ = item_interval_us_ == Clock::kInfiniteFuture
                            ? sample_us
                            : item_interval_us_ + (sample_us - item_interval_us_) / kServiceTimeWindow;
  }
  last_arrival_us_ = now_us;
}

Status DynamicBatcher::Shutdown(int64_t drain_deadline_us) {
  return Drain(drain_deadline_us,
               DeadlineExceededError("shutting down: the drain timeout ended before this task ran"));
}

Status DynamicBatcher::Drain(int64_t drain_deadline_us, const Status& leftover_status) {
  std::unique_lock<std::mutex> lock(mu_);
  if (shutting_down_) {
    while (!shutdown_done_) clock_->WaitUntil(lock, progress_cv_, Clock::kInfiniteFuture);
    return shutdown_result_;
  }
  shutting_down_ = true;
  work_cv_.notify_all();  // waiting workers re-decide with flush set
  while ((!queue_.empty() || tasks_in_hand_ > 0) && clock_->NowMicros() < drain_deadline_us) {
    clock_->WaitUntil(lock, progress_cv_, drain_deadline_us);
  }
  std::vector<std::unique_ptr<Task>> leftover;
  leftover.reserve(queue_.size());
  for (std::unique_ptr<Task>& task : queue_) leftover.push_back(std::move(task));
  queue_.clear();
  queued_items_ = 0;
  UpdateQueueDepthLocked();
  stop_workers_ = true;
  work_cv_.notify_all();
  lock.unlock();

  const int64_t failed = static_cast<int64_t>(leftover.size());
  Bump(counters_.tasks_drain_failed, failed);
  FinishAll(leftover, leftover_status);
  for (std::thread& worker : workers_) worker.join();
  finishers_.clear();  // each finishes the answers it holds
  Status result = failed == 0 ? OkStatus()
                              : DeadlineExceededError("drain deadline passed with " + std::to_string(failed) +
                                                      " queued tasks; they were finished with " +
                                                      std::string(StatusCodeName(leftover_status.code())));

  lock.lock();
  shutdown_result_ = result;
  shutdown_done_ = true;
  progress_cv_.notify_all();
  return result;
}

DynamicBatcherStats DynamicBatcher::stats() const {
  DynamicBatcherStats stats;
  stats.queue_depth = QueueDepth();
  stats.tasks_admitted = Read(counters_.tasks_admitted);
  stats.tasks_rejected_queue_full = Read(counters_.tasks_rejected_queue_full);
  stats.tasks_rejected_overloaded = Read(counters_.tasks_rejected_overloaded);
  stats.tasks_rejected_shutdown = Read(counters_.tasks_rejected_shutdown);
  stats.tasks_rejected_invalid = Read(counters_.tasks_rejected_invalid);
  stats.tasks_rejected_expired = Read(counters_.tasks_rejected_expired);
  stats.tasks_expired = Read(counters_.tasks_expired);
  stats.tasks_cancelled = Read(counters_.tasks_cancelled);
  stats.tasks_invalid = Read(counters_.tasks_invalid);
  stats.tasks_drain_failed = Read(counters_.tasks_drain_failed);
  stats.tasks_succeeded = Read(counters_.tasks_succeeded);
  stats.tasks_failed = Read(counters_.tasks_failed);
  stats.batches_run = Read(counters_.batches_run);
  stats.batches_run_inline = Read(counters_.batches_run_inline);
  stats.items_run = Read(counters_.items_run);
  stats.batches_by_size.reserve(counters_.batches_by_size.size());
  for (const std::atomic<int64_t>& n : counters_.batches_by_size) stats.batches_by_size.push_back(Read(n));
  return stats;
}

void DynamicBatcher::WorkerLoop(size_t instance, HandOffThread* finisher) {
  BatchRunner* const runner = runners_[instance].get();
  SetCurrentThreadName("batch:" + options_.name);
  std::vector<QueuedTaskInfo> snapshot;
  // The previous batch this worker took, for the cycle time: when it was taken, its items, and whether the
  // worker has waited for work since (then the gap is idle time, not the cost of serving the queue).
  int64_t previous_take_us = -1;
  int64_t previous_items = 0;
  bool waited = true;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_workers_) {
    // Nothing queued, or the runner is running a task inline (RunInline wakes the workers when it is done).
    if (queue_.empty() || instance_busy_[instance]) {
      waited = true;
      clock_->WaitUntil(lock, work_cv_, Clock::kInfiniteFuture);
      continue;
    }
    const BatchDecision decision = DecideLocked(snapshot, instance);
    const bool drops = !decision.cancelled.empty() || !decision.expired.empty() || !decision.invalid.empty();
    if (decision.action != BatchDecision::Action::kRun && !drops) {
      waited = true;
      clock_->WaitUntil(lock, work_cv_, decision.wake_at_us);
      continue;
    }
    TakenTasks taken = TakeLocked(decision);
    if (taken.batch_items > 0) {
      const int64_t now_us = clock_->NowMicros();
      if (!waited && previous_take_us >= 0) RecordCycleTime(now_us - previous_take_us, previous_items);
      previous_take_us = now_us;
      previous_items = taken.batch_items;
      waited = false;
    }
    const int64_t dropped = TookLocked(taken, instance);
    if (!queue_.empty()) work_cv_.notify_one();  // another worker may form the next batch meanwhile
    lock.unlock();
    FinishDropped(taken);
    RunOutcome outcome = Run(runner, taken);
    lock.lock();
    RanLocked(taken, outcome, dropped, instance);
    if (taken.batch.empty()) continue;
    // Tasks wait: the next batch runs while these answers are sent. Else the worker has nothing better to do and
    // answers at once, saving the hand-off's wake-up.
    const bool hand_off = finisher != nullptr && !queue_.empty();
    lock.unlock();
    if (hand_off) {
      auto held = std::make_shared<FinishedBatch>(FinishedBatch{std::move(taken.batch), std::move(outcome)});
      finisher->Hand([this, held] { FinishBatch(held->tasks, held->outcome); });
    } else {
      FinishBatch(taken.batch, outcome);
    }
    lock.lock();
  }
}

DynamicBatcher::TakenTasks DynamicBatcher::TakeLocked(const BatchDecision& decision) {
  enum class Fate : char { kStay, kRun, kCancelled, kExpired, kInvalid };
  std::vector<Fate> fate(queue_.size(), Fate::kStay);
  for (size_t i : decision.run) fate[i] = Fate::kRun;
  for (size_t i : decision.cancelled) fate[i] = Fate::kCancelled;
  for (size_t i : decision.expired) fate[i] = Fate::kExpired;
  for (size_t i : decision.invalid) fate[i] = Fate::kInvalid;

  TakenTasks taken;
  taken.batch_items = decision.batch_items;
  taken.plan_timing_due =
      decision.batch_items > 0 &&
      PlanRunIsTimed(plan_costs_, PaddedBatchItems(decision.batch_items, options_), options_.plan_timing_stride);
  std::deque<std::unique_ptr<Task>> rest;
  for (size_t i = 0; i < queue_.size(); ++i) {
    std::unique_ptr<Task>& task = queue_[i];
    switch (fate[i]) {
      case Fate::kStay:
        rest.push_back(std::move(task));
        break;
      case Fate::kRun:
        taken.batch.push_back(std::move(task));
        break;
      case Fate::kCancelled:
        taken.cancelled.push_back(std::move(task));
        break;
      case Fate::kExpired:
        taken.expired.push_back(std::move(task));
        break;
      case Fate::kInvalid:
        taken.invalid.push_back(std::move(task));
        break;
    }
  }
  queue_ = std::move(rest);
  queued_items_ = 0;
  for (const std::unique_ptr<Task>& task : queue_) queued_items_ += task->num_items();
  UpdateQueueDepthLocked();
  return taken;
}

void DynamicBatcher::FinishDropped(TakenTasks& taken) {
  Bump(counters_.tasks_cancelled, static_cast<int64_t>(taken.cancelled.size()));
  Bump(counters_.tasks_expired, static_cast<int64_t>(taken.expired.size()));
  Bump(counters_.tasks_invalid, static_cast<int64_t>(taken.invalid.size()));
  FinishAll(taken.cancelled, CancelledError("request cancelled while queued"));
  FinishAll(taken.expired, DeadlineExceededError("deadline passed while queued"));
  FinishAll(taken.invalid, InvalidArgumentError("task item count outside [1, max_batch_size " +
                                                std::to_string(options_.max_batch_size) + "]"));
}

DynamicBatcher::RunOutcome DynamicBatcher::Run(BatchRunner* runner, const TakenTasks& taken) {
  RunOutcome outcome;
  if (taken.batch.empty()) return outcome;
  std::vector<Task*> batch;
  batch.reserve(taken.batch.size());
  for (const std::unique_ptr<Task>& task : taken.batch) batch.push_back(task.get());
  outcome.statuses.resize(batch.size());
  const bool on_this_thread = runner->RunsOnCallingThread();
  const bool time_plan =
      options_.policy == BatchingPolicy::kAdaptive && (taken.plan_timing_due || !on_this_thread);
  const int64_t start_plan_us = time_plan ? RunTimerMicros(*clock_, on_this_thread) : 0;
  const int64_t start_us = clock_->NowMicros();
  try {
    outcome.overall = runner->RunBatch(batch, outcome.statuses);
  } catch (const std::exception& e) {
    outcome.overall = InternalError(std::string("batch runner threw: ") + e.what());
  } catch (...) {
    outcome.overall = InternalError("batch runner threw a non-standard exception");
  }
  const int64_t run_us = clock_->NowMicros() - start_us;
  if (outcome.overall.ok()) RecordServiceTime(run_us, taken.batch_items);
  Bump(counters_.batches_run);
  Bump(counters_.items_run, taken.batch_items);
  Bump(counters_.batches_by_size[static_cast<size_t>(taken.batch_items)]);
  if (outcome.overall.ok() && time_plan) outcome.plan_us = RunTimerMicros(*clock_, on_this_thread) - start_plan_us;
  return outcome;
}

void DynamicBatcher::FinishBatch(std::vector<std::unique_ptr<Task>>& tasks, RunOutcome& outcome) {
  for (size_t i = 0; i < tasks.size(); ++i) {
    Status status = outcome.statuses[i].ok() ? outcome.overall : std::move(outcome.statuses[i]);
    Bump(status.ok() ? counters_.tasks_succeeded : counters_.tasks_failed);
    tasks[i]->Finish(std::move(status));
    tasks[i].reset();
  }
  std::lock_guard<std::mutex> lock(mu_);
  tasks_in_hand_ -= static_cast<int64_t>(tasks.size());
  tasks.clear();
  if (shutting_down_) progress_cv_.notify_all();
}

}  // namespace cnnserve
