// DecideAdmission: whether the dynamic batcher takes a new task, as a pure function (no clock, no locks), so that
// load shedding is decided in one place and tested from a table (DESIGN.md 5.6).
//
// Why: past capacity, a task that is queued only to miss its deadline costs the same work as one that succeeds
// (or, in an ensemble, the work of every member) and delays everything behind it. So a task is refused at once,
// before any work is spent on it, when the queue is full or when the work already ahead of it would carry it past
// its deadline.
//
// Rules, in order:
//  1. Queue full: queued_tasks >= max_queue_size -> kQueueFull.
//  2. Misses the deadline: the task has a deadline, the service time per item is known (item_service_ns > 0), and
//       now + expected wait + its own run time > deadline  -> kMissesDeadline,
//     where expected wait = (queued_items + running_items / 2) * item_service_ns / num_instances (the running
//     batches are on average half done) and its own run time = task_items * item_service_ns.
//  3. Otherwise kAdmit.
// The estimate is a recent average (DynamicBatcher::item_work_ns: a moving average of a batch's run time per item,
// or of the time per item from one batch's start to the next when that is longer), so it errs both ways by the
// spread of batch sizes; it only ever refuses tasks with a deadline.
// Thread-safety: a pure function.
#ifndef CNNSERVE_SERVER_BATCHING_ADMISSION_POLICY_H_
#define CNNSERVE_SERVER_BATCHING_ADMISSION_POLICY_H_

#include <cstdint>

#include "server/batching/clock.h"

namespace cnnserve {

// The queue as a new task finds it.
struct AdmissionSnapshot {
  int64_t queued_tasks = 0;
  int64_t queued_items = 0;
  int64_t running_items = 0;  // items of batches running now
  int64_t item_service_ns =
      0;                  // recent cost of one queued item (DynamicBatcher::item_work_ns); 0: not measured yet
  int num_instances = 1;  // batches that run at once
  int64_t max_queue_size = 1;
};

struct AdmissionDecision {
  enum class Action { kAdmit, kQueueFull, kMissesDeadline };
  Action action = Action::kAdmit;
  int64_t expected_wait_us = 0;    // the wait the estimate gives (0 when unknown)
  int64_t expected_finish_us = 0;  // now + wait + the task's own run time (now when unknown)
};

AdmissionDecision DecideAdmission(const AdmissionSnapshot& queue, int64_t task_items, int64_t now_us,
                                  int64_t deadline_us);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_ADMISSION_POLICY_H_
