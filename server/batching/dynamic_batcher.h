// DynamicBatcher: one model's request queue and its worker threads. It groups queued tasks into batches following
// DecideBatch (batch_policy.h) and hands each batch to a BatchRunner on a worker thread; it knows nothing of
// models, tensors or gRPC.
//
// Life of a task: Schedule admits it into a bounded FIFO queue (or returns an error and leaves it with the
// caller). Admission sheds load at once (admission_policy.h): a full queue, or a task whose deadline the work
// ahead of it would pass (by the measured run time per item), is refused before any work is spent on it. A worker
// thread takes it either into a batch, which its runner runs, or out of the queue as cancelled (CANCELLED) or
// expired (DEADLINE_EXCEEDED). In every case the batcher then calls the task's callback exactly once, outside its
// lock, and destroys the task. Cancellation and deadlines are checked whenever a worker looks at the queue (a task
// arrives, a batch ends, a delay or deadline is reached): a cancelled task is finished at the latest when it would
// otherwise have run, an expired one at its deadline if a worker is free (else when one is).
//
// Threads: `num_instances` workers, each owning one BatchRunner made by the factory at Create (so each has its own
// engine session and scratch). Runners run concurrently with each other, never concurrently with themselves.
// Overlap (options.overlap_answers): when tasks wait as a batch ends, the worker hands the batch's tasks to its
// own HandOffThread, which runs their callbacks (the answers: top-k, serialising, sending) while the worker runs
// the next batch; it hands the next only once those are done. When nothing waits, the worker runs them itself.
// Run to completion (options.max_inline_run_us): a task that arrives at an empty queue while an instance is idle,
// that the policy runs at once and whose batch is cheap, runs on that instance's runner on the thread calling
// Schedule, and its callback is called there before Schedule returns; the instance's worker does not use its
// runner meanwhile.
// Thread-safety: all public methods are thread-safe. Callbacks, runners and cancellation checks must not call
// Shutdown or destroy the batcher.
#ifndef CNNSERVE_SERVER_BATCHING_DYNAMIC_BATCHER_H_
#define CNNSERVE_SERVER_BATCHING_DYNAMIC_BATCHER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "engine/common/status.h"
#include "server/batching/batch_policy.h"
#include "server/batching/clock.h"
#include "server/batching/hand_off_thread.h"
#include "server/batching/options.h"
#include "server/batching/scheduler.h"
#include "server/batching/task.h"

namespace cnnserve {

// Runs batches for one model instance. Implemented by the inference layer (and by fakes in tests).
class BatchRunner {
 public:
  virtual ~BatchRunner() = default;

  // Runs `batch`: 1..max_batch_size items in total, tasks in FIFO order. Called on one thread at a time, never
  // concurrently: the worker that owns this runner, or a thread running a task to completion inside Schedule
  // (max_inline_run_us), so per-runner state needs no lock but thread-local state is not the runner's. The
  // batcher keeps ownership of the tasks and calls their callbacks after this returns: the runner must not call
  // Task::Finish. `task_statuses` has one entry per task, all OK on entry; set an entry to fail only that task. A
  // non-OK return fails every task whose entry is still OK. Blocks for the duration of the run.
  virtual Status RunBatch(std::span<Task* const> batch, std::span<Status> task_statuses) = 0;

  // Run times this runner measured for its plans before serving (its warm-up), ascending by batch size; empty
  // when it has none. The batcher starts its plan costs (BatchLoad::plan_costs) from the first runner's.
  virtual std::vector<PlanCost> PlanCosts() const { return {}; }

  // Whether RunBatch does its work on the calling thread (true) or hands it to other threads and waits (a compute
  // lane). The batcher times a plan by the calling thread's CPU time when true, so that a run preempted by the
  // front end's threads does not count the time it lost (on every plan_timing_stride-th run); else by the wall
  // time (on every run).
  virtual bool RunsOnCallingThread() const { return true; }
};

// Makes the runner of worker `instance` (0 .. num_instances - 1); called num_instances times by Create, on the
// thread calling Create.
using BatchRunnerFactory = std::function<StatusOr<std::unique_ptr<BatchRunner>>(int instance)>;

// A snapshot of the counters (each read atomically, without locks; the set is not one consistent instant).
// Once Shutdown has returned: tasks_admitted == tasks_succeeded + tasks_failed + tasks_expired + tasks_cancelled +
// tasks_invalid + tasks_drain_failed.
struct DynamicBatcherStats {
  int64_t queue_depth = 0;                // tasks waiting now
  int64_t tasks_admitted = 0;             // Schedule returned OK
  int64_t tasks_rejected_queue_full = 0;  // Schedule returned UNAVAILABLE (queue full)
  int64_t tasks_rejected_overloaded = 0;  // Schedule returned UNAVAILABLE (would miss its deadline)
  int64_t tasks_rejected_shutdown = 0;    // Schedule returned UNAVAILABLE (shutting down)
  int64_t tasks_rejected_invalid = 0;     // Schedule returned INVALID_ARGUMENT
  int64_t tasks_rejected_expired = 0;     // Schedule returned DEADLINE_EXCEEDED
  int64_t tasks_expired = 0;              // dropped from the queue with DEADLINE_EXCEEDED
  int64_t tasks_cancelled = 0;            // dropped from the queue with CANCELLED
  int64_t tasks_invalid = 0;              // dropped from the queue with INVALID_ARGUMENT (never via Schedule)
  int64_t tasks_drain_failed = 0;         // finished with UNAVAILABLE at the drain deadline
  int64_t tasks_succeeded = 0;            // ran, OK
  int64_t tasks_failed = 0;               // ran, runner error
  int64_t batches_run = 0;
  int64_t batches_run_inline = 0;  // of batches_run: run to completion by the thread that scheduled the task
  int64_t items_run = 0;
  // batches_by_size[n]: batches run with n items; size max_batch_size + 1 (index 0 unused).
  std::vector<int64_t> batches_by_size;
};

class DynamicBatcher final : public Scheduler {
 public:
  // Validates `options` (INVALID_ARGUMENT naming the field and limit), makes one runner per instance (the
  // factory's error, with the instance number, if one fails; INTERNAL if it returns null) and starts the workers.
  static StatusOr<std::unique_ptr<DynamicBatcher>> Create(const DynamicBatcherOptions& options,
                                                          const BatchRunnerFactory& runner_factory);

  // Shuts down if Shutdown was not called: queued tasks are finished with UNAVAILABLE at once, running batches
  // complete, workers are joined. Blocks until then.
  ~DynamicBatcher() override;

  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // See Scheduler::Schedule. Non-blocking apart from a short lock, except that it may run the task and call its
  // callback before returning (run to completion, above). Sets the task's enqueue time. Errors, checked
  // in this order: INVALID_ARGUMENT (null task; num_items < 1; num_items > max_batch_size, naming the limit),
  // UNAVAILABLE "shutting down", DEADLINE_EXCEEDED (deadline already reached), UNAVAILABLE (queue holds
  // max_queue_size tasks, naming the limit), UNAVAILABLE "overloaded" (the work ahead would carry the task past
  // its deadline, naming the expected wait).
  Status Schedule(std::unique_ptr<Task>& task) override;

  // Whether `num_tasks` tasks of `items` items in all, with this deadline (Clock::kInfiniteFuture: none), would be
  // admitted now: OK or the error Schedule would return. Nothing is reserved (a caller that checks several
  // batchers before scheduling on all of them, like an ensemble, can still meet a refusal later, rarely).
  Status CheckAdmission(int64_t num_tasks, int64_t items, int64_t deadline_us);

  // Counts `items` (negative: stops counting them) as coming: admitted by CheckAdmission and not yet scheduled
  // (their images are being decoded). Admission counts them as queued, so that requests admitted while others
  // wait to be decoded see the work those will add to this queue.
  void AddIncoming(int64_t items);
  // Counts `items` (negative: stops counting them) as being decoded by the thread that will Schedule them next.
  // Admission does not count them (their request was checked already); the adaptive policy waits for them and
  // for the incoming ones (batch_policy.h).
  void AddDecoding(int64_t items);

  // How long from now until `items` more items would have run, by the admission estimate (DecideAdmission:
  // the work ahead in this batcher plus their own run time); 0 before the first batch has been timed. A caller
  // whose tasks go to several batchers that share the same cores (an ensemble's members) adds these up.
  int64_t ExpectedWorkMicros(int64_t items) const;

  // Recent run time of a batch divided by its items (exponential moving average); 0 before the first batch.
  int64_t item_service_ns() const { return item_service_ns_.load(std::memory_order_relaxed); }
  // What an item of queued work costs the queue, for admission: the larger of item_service_ns and the recent time
  // from one batch's start to the same worker's next, divided by the first batch's items, measured only when the
  // worker took the next batch without waiting for work. The cycle adds what the run time leaves out: waiting for
  // the previous batch's answers to be sent (or sending them, without overlap_answers) and the time the worker is
  // runnable but not running because the front end takes the cores (under overload on 2 cores: 0.75 of a core, so
  // a queue estimated from run times alone held 1.3 s of real work at a 1 s bound).
  int64_t item_work_ns() const;

  int64_t QueueDepth() const override { return queue_depth_.load(std::memory_order_relaxed); }

  // See Scheduler::Shutdown. Tasks still queued at the drain deadline end with DEADLINE_EXCEEDED ("the drain
  // timeout ended before this task ran"), their callback on the calling thread.
  Status Shutdown(int64_t drain_deadline_us) override;

  const DynamicBatcherOptions& options() const { return options_; }
  DynamicBatcherStats stats() const;

 private:
  // Shutdown's body: queued tasks left at the deadline end with `leftover_status` (the destructor: UNAVAILABLE).
  Status Drain(int64_t drain_deadline_us, const Status& leftover_status);

  struct Counters {
    explicit Counters(int64_t max_batch_size);
    std::atomic<int64_t> tasks_admitted{0};
    std::atomic<int64_t> tasks_rejected_queue_full{0};
    std::atomic<int64_t> tasks_rejected_overloaded{0};
    std::atomic<int64_t> tasks_rejected_shutdown{0};
    std::atomic<int64_t> tasks_rejected_invalid{0};
    std::atomic<int64_t> tasks_rejected_expired{0};
    std::atomic<int64_t> tasks_expired{0};
    std::atomic<int64_t> tasks_cancelled{0};
    std::atomic<int64_t> tasks_invalid{0};
    std::atomic<int64_t> tasks_drain_failed{0};
    std::atomic<int64_t> tasks_succeeded{0};
    std::atomic<int64_t> tasks_failed{0};
    std::atomic<int64_t> batches_run{0};
    std::atomic<int64_t> batches_run_inline{0};
    std::atomic<int64_t> items_run{0};
    std::vector<std::atomic<int64_t>> batches_by_size;
  };
  // Tasks a worker took out of the queue under the lock, to finish outside it.
  struct TakenTasks {
    std::vector<std::unique_ptr<Task>> batch;
    std::vector<std::unique_ptr<Task>> cancelled;
    std::vector<std::unique_ptr<Task>> expired;
    std::vector<std::unique_ptr<Task>> invalid;
    int64_t batch_items = 0;
    // kAdaptive: the batch's plan is due to be timed by the CPU clock (PlanRunIsTimed, plan_timing_stride).
    bool plan_timing_due = false;
    size_t size() const { return batch.size() + cancelled.size() + expired.size() + invalid.size(); }
  };

  DynamicBatcher(const DynamicBatcherOptions& options, std::vector<std::unique_ptr<BatchRunner>> runners);

  // What running a batch gave: the runner's result, its per-task statuses, and its cost for the plan figures
  // (-1: failed, or not timed): the CPU time of the thread that ran it, or the wall time
  // (BatchRunner::RunsOnCallingThread). Only kAdaptive times plans; a runner on the calling thread only when
  // taken.plan_timing_due.
  struct RunOutcome {
    Status overall;
    std::vector<Status> statuses;
    int64_t plan_us = -1;
  };
  // A batch that ran, handed to a worker's finisher with its outcome.
  struct FinishedBatch {
    std::vector<std::unique_ptr<Task>> tasks;
    RunOutcome outcome;
  };

  // `instance`: the worker's index (its runner: runners_[instance]); `finisher`: where its answers go while it
  // runs the next batch, null without overlap_answers.
  void WorkerLoop(size_t instance, HandOffThread* finisher);
  // What the policy decides for the queue now (DecideBatch over a snapshot of queue_), if runners_[instance] is to
  // run the batch. Requires mu_.
  BatchDecision DecideLocked(std::vector<QueuedTaskInfo>& snapshot, size_t instance) const;
  // Schedule's run to completion: with mu_ held by `lock` and the new task alone in queue_, runs it here if an
  // instance is idle, the policy would run it now and its batch is cheap (options.max_inline_run_us); returns
  // whether it did (then `lock` is released).
  bool RunInline(std::unique_lock<std::mutex>& lock);
  // AddIncoming and AddDecoding: adds `items` to `counter` (incoming_items_ or decoding_items_, at least 0) and
  // wakes a worker that may be waiting for them.
  void AddComing(int64_t* counter, int64_t items);
  // Counts `taken` as in hand and running on runners_[instance]; returns how many of its tasks were dropped
  // (cancelled, expired, invalid). Requires mu_.
  int64_t TookLocked(const TakenTasks& taken, size_t instance);
  // Undoes TookLocked once the batch ran (`dropped` as it returned) and folds its cost into the estimates.
  // Requires mu_.
  void RanLocked(const TakenTasks& taken, const RunOutcome& outcome, int64_t dropped, size_t instance);
  // The run time the batch of `items` is expected to take: its plan's measured cost, else the run time per item
  // times `items`; 0 before anything was measured. Requires mu_.
  int64_t ExpectedRunMicrosLocked(int64_t items) const;
  // Moves the tasks named by `decision` out of queue_. Requires mu_.
  TakenTasks TakeLocked(const BatchDecision& decision);
  // Finishes the cancelled, expired and invalid tasks of `taken`. Called without mu_.
  void FinishDropped(TakenTasks& taken);
  // Runs the batch of `taken` (none: an outcome with plan_us -1) and counts it. Called without mu_.
  RunOutcome Run(BatchRunner* runner, const TakenTasks& taken);
  // Finishes the batch's tasks with their statuses (the runner's, or the overall one), counts them and lets go of
  // them (tasks_in_hand_). Called without mu_, on the worker or on its finisher.
  void FinishBatch(std::vector<std::unique_ptr<Task>>& tasks, RunOutcome& outcome);
  // Folds a batch's run time into the cost of the plan it ran on (plan_costs_: NextPlanRunUs; a stale figure's
  // interval is then set by NextStaleAfterBatches); counts the batch in every plan's batches_since_timed.
  // run_us < 0: the run was not timed, and is only counted. Requires mu_.
  void RecordPlanCostLocked(int64_t items, int64_t run_us);
  // DecideAdmission for `num_tasks` tasks of `items` items; OK or the refusal, counted. Requires mu_.
  Status AdmitLocked(int64_t num_tasks, int64_t items, int64_t deadline_us, int64_t now_us);
  // Folds one batch's run time into item_service_ns_.
  void RecordServiceTime(int64_t run_us, int64_t items);
  // Folds one batch cycle (its start to the next batch's start on the same busy worker) into item_cycle_ns_.
  void RecordCycleTime(int64_t cycle_us, int64_t items);
  // Folds the gap since the previous arrival into item_interval_us_. Requires mu_.
  void RecordArrivalLocked(int64_t now_us, int64_t items);
  void UpdateQueueDepthLocked() {
    queue_depth_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
  }

  const DynamicBatcherOptions options_;
  Clock* const clock_;                                 // not owned
  std::vector<std::unique_ptr<BatchRunner>> runners_;  // runners_[i]: by workers_[i], or inline (instance_busy_)
  std::vector<std::thread> workers_;
  std::vector<std::unique_ptr<HandOffThread>> finishers_;  // finishers_[i]: workers_[i]'s answers (or null)
  Counters counters_;
  std::atomic<int64_t> queue_depth_{0};
  std::atomic<int64_t> item_service_ns_{0};
  std::atomic<int64_t> item_cycle_ns_{0};

  mutable std::mutex mu_;
  std::condition_variable work_cv_;          // workers: a task arrived, the queue changed, or stop
  std::condition_variable progress_cv_;      // Shutdown: a worker finished tasks, or shutdown completed
  std::deque<std::unique_ptr<Task>> queue_;  // guarded by mu_
  int64_t tasks_in_hand_ = 0;                // guarded by mu_: taken out of queue_ (worker, inline), unfinished
  std::vector<char> instance_busy_;          // guarded by mu_: runners_[i] runs a batch (its worker's or inline)
  int64_t queued_items_ = 0;                 // guarded by mu_: items of the tasks in queue_
  int64_t running_items_ = 0;                // guarded by mu_: items of the batches running now
  int64_t incoming_items_ = 0;               // guarded by mu_: items admitted and not yet scheduled (AddIncoming)
  int64_t decoding_items_ = 0;               // guarded by mu_: items being decoded for Schedule (AddDecoding)
  int64_t recent_batch_milli_ = 0;           // guarded by mu_: moving average of items per batch, x 1000
  std::vector<PlanCost> plan_costs_;         // guarded by mu_: ascending by batch size, measured plans only
  int64_t last_arrival_us_ = -1;             // guarded by mu_: when the newest task was scheduled; -1: none yet
  // Guarded by mu_: when runners_[i] last finished a batch (0: never), where the adaptive policy's delay starts.
  std::vector<int64_t> instance_free_since_us_;
  int64_t item_interval_us_ = Clock::kInfiniteFuture;  // guarded by mu_: moving average of the gap per item
  bool shutting_down_ = false;  // guarded by mu_: reject new tasks, run queued ones without delay
  bool stop_workers_ = false;   // guarded by mu_: workers exit
  bool shutdown_done_ = false;  // guarded by mu_
  Status shutdown_result_;      // guarded by mu_; valid once shutdown_done_
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_DYNAMIC_BATCHER_H_
