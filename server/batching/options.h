// DynamicBatcherOptions: every knob of one model's dynamic batcher, with its default. Mirrors the dynamic batching
// section of a model's config.pbtxt (max batch size, max queue delay, preferred sizes, max queue size, instances).
// Thread-safety: a plain value; copied into the batcher at Create.
#ifndef CNNSERVE_SERVER_BATCHING_OPTIONS_H_
#define CNNSERVE_SERVER_BATCHING_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "server/batching/clock.h"

namespace cnnserve {

// How a free instance decides between running what is queued and waiting for a fuller batch (batch_policy.h).
enum class BatchingPolicy {
  kFixedDelay,  // Triton's: wait up to max_queue_delay_us for a preferred or full batch
  kAdaptive,    // work-conserving: run the cheapest batch per image now unless waiting saves more than it costs
};

struct DynamicBatcherOptions {
  // kFixedDelay here (what the batcher's own tests assume); a model config without `policy` gets kAdaptive
  // (ModelServable).
  BatchingPolicy policy = BatchingPolicy::kFixedDelay;
  // Most items (images) in one batch; a task with more is rejected by Schedule. >= 1.
  int64_t max_batch_size = 8;
  // How long the oldest queued task may wait for a fuller batch. 0: never wait, run what is there. >= 0.
  // kAdaptive: an upper bound on its waits (batch_policy.h).
  int64_t max_queue_delay_us = 0;
  // Batch sizes (in items) worth running as soon as they can be formed exactly, e.g. sizes with a compiled plan.
  // Each in [1, max_batch_size]; order and duplicates do not matter. max_batch_size always counts as preferred.
  // kAdaptive: the sizes a batch is worth filling up to (the model's compiled plans).
  std::vector<int64_t> preferred_batch_sizes;
  // Most tasks waiting in the queue (not counting running batches); Schedule returns UNAVAILABLE beyond. >= 1.
  int64_t max_queue_size = 1024;
  // Worker threads, each with its own BatchRunner (its own engine session). >= 1.
  int num_instances = 1;
  // When tasks wait as a batch ends, its answers (the tasks' callbacks) go to a second thread per worker,
  // "reply:<name>", and the worker runs the next batch meanwhile (at most one batch's answers wait there). When
  // nothing waits, the worker answers itself. false: always the worker (ModelServable sets false where a run's
  // OpenMP threads fill every core: OverlapPays in model_servable.h).
  bool overlap_answers = true;
  // Run to completion: a task that arrives at an empty queue while an instance is idle, and that the policy would
  // run at once, is run and answered by the thread that schedules it (inside Schedule) instead of a worker, when
  // its batch is expected to take at most this long (the plan's measured cost, else the run time per item). Cheap
  // models then make no thread hand-off per request (a worker's wake-up and the answers' hand-off cost a context
  // switch each). 0: never; every batch runs on a worker.
  int64_t max_inline_run_us = 0;
  // kAdaptive, a runner that computes on the worker's thread (BatchRunner::RunsOnCallingThread): a plan run is
  // timed by that thread's CPU time only when the plan has no figure, its figure is stale, or this many batches
  // ran since it was last timed; the other runs only count. The CPU clock is a system call on some machines (1.3
  // us a read on a KVM guest, against 27 ns for the wall clock), and a cheap model runs tens of thousands of
  // batches a second. A runner timed by the wall clock (a compute lane) times every run. 1: every run. >= 1.
  int64_t plan_timing_stride = 4;
  // What the worker threads are called (SetCurrentThreadName: "batch:<name>"); the model's name.
  std::string name;
  // Source of time; not owned, must outlive the batcher. nullptr: Clock::Real().
  Clock* clock = nullptr;
};

// OK, or INVALID_ARGUMENT naming the first field out of range and its limit.
Status ValidateDynamicBatcherOptions(const DynamicBatcherOptions& options);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_OPTIONS_H_
