// Scheduler: what the transport hands inference tasks to. The dynamic batcher implements it, and so does an
// ensemble, so the transport never needs to know which one serves a model name.
//
// Ownership follows TF Serving's batch_scheduler convention: Schedule takes the task only when it returns OK
// (then `task` is null and the task's callback will be called exactly once); on error the caller still owns the
// task, its callback is not called, and the caller answers the request with the returned status.
// Thread-safety: implementations are thread-safe; Schedule may be called from many threads at once.
#ifndef CNNSERVE_SERVER_BATCHING_SCHEDULER_H_
#define CNNSERVE_SERVER_BATCHING_SCHEDULER_H_

#include <cstdint>
#include <memory>

#include "engine/common/status.h"
#include "server/batching/task.h"

namespace cnnserve {

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Admits `task` without blocking on the queue. Errors (the task stays with the caller): INVALID_ARGUMENT for a
  // null task or a bad item count (the message names the limit), UNAVAILABLE when the queue is full or the
  // scheduler is shutting down, DEADLINE_EXCEEDED when the task's deadline has already passed.
  virtual Status Schedule(std::unique_ptr<Task>& task) = 0;

  // Tasks admitted and not yet started (or dropped). Lock-free; a snapshot.
  virtual int64_t QueueDepth() const = 0;

  // Stops admitting (Schedule then returns UNAVAILABLE "shutting down"), runs everything already admitted without
  // waiting for more (batching delays no longer apply), and blocks until that is done or until drain_deadline_us
  // on the scheduler's clock; tasks still queued then are finished with DEADLINE_EXCEEDED. Batches already running are
  // always allowed to finish; then the worker threads are joined. Returns OK when everything admitted was run,
  // DEADLINE_EXCEEDED saying how many tasks were failed otherwise. Later calls block until the first completes
  // and return its result. Every admitted task's callback has been called when Shutdown returns.
  virtual Status Shutdown(int64_t drain_deadline_us) = 0;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_SCHEDULER_H_
