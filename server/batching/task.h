// Task: one unit of work handed to a Scheduler, e.g. one inference request carrying num_items images.
//
// The batching layer only reads the bookkeeping fields (item count, deadline, cancellation, enqueue time) and
// calls the completion callback; the payload is whatever a subclass adds (input views, output slots) and is read
// by the BatchRunner of the same layer, which downcasts. A Task is created by the caller, owned by the scheduler
// from the moment Schedule returns OK, and destroyed by the scheduler right after its callback returns.
// Thread-safety: set up by one thread before Schedule; after that the scheduler accesses it from one thread at a
// time. The cancellation check may be called from any scheduler thread.
#ifndef CNNSERVE_SERVER_BATCHING_TASK_H_
#define CNNSERVE_SERVER_BATCHING_TASK_H_

#include <cstdint>
#include <functional>
#include <utility>

#include "engine/common/status.h"
#include "server/batching/clock.h"

namespace cnnserve {

class Task {
 public:
  // Called exactly once with the task's final status: OK or the runner's error, or DEADLINE_EXCEEDED, CANCELLED,
  // UNAVAILABLE (drain deadline passed) from the scheduler. Runs on a scheduler thread, never inside Schedule;
  // the task is still alive during the call and destroyed right after it returns. Must not throw.
  using DoneCallback = std::function<void(Status)>;
  // Returns true once the request has been cancelled (e.g. the client went away). Called with the scheduler's
  // lock held: must be cheap, non-blocking and must not call into the scheduler.
  using CancellationCheck = std::function<bool()>;

  // `num_items` is the number of batch rows this task contributes (>= 1, <= the scheduler's max_batch_size).
  Task(int64_t num_items, DoneCallback done) : num_items_(num_items), done_(std::move(done)) {}
  virtual ~Task() = default;
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  int64_t num_items() const { return num_items_; }

  // Absolute deadline on the scheduler's Clock; Clock::kInfiniteFuture (the default) means none.
  int64_t deadline_us() const { return deadline_us_; }
  void set_deadline_us(int64_t deadline_us) { deadline_us_ = deadline_us; }

  // Optional; without one the task is never cancelled.
  void set_cancellation_check(CancellationCheck check) { cancelled_ = std::move(check); }
  bool IsCancelled() const { return cancelled_ && cancelled_(); }

  // Set by the scheduler that admits the task, on its clock.
  int64_t enqueue_time_us() const { return enqueue_time_us_; }
  void set_enqueue_time_us(int64_t time_us) { enqueue_time_us_ = time_us; }

  // Called by the scheduler that owns the task: runs the callback once; later calls do nothing.
  void Finish(Status status);
  bool finished() const { return finished_; }

 private:
  const int64_t num_items_;
  DoneCallback done_;
  CancellationCheck cancelled_;
  int64_t deadline_us_ = Clock::kInfiniteFuture;
  int64_t enqueue_time_us_ = 0;
  bool finished_ = false;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_TASK_H_
