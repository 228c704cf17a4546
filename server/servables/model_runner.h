// What runs inside a model version's DynamicBatcher: InferTask (a share of one request's images, already
// preprocessed) and SessionBatchRunner (one instance: an engine Session with plans compiled for a few batch
// sizes, warmed up at each of them).
//
// Batch sizes, padding and warm-up. A plan is compiled per batch size, and compiling is slow (milliseconds for
// LeNet, much more for VGG), so an instance compiles plans only for PlanBatchSizes(max_batch_size, preferred) =
// {1, each preferred size, max_batch_size} and runs a batch of n images on the smallest plan >= n, padding the
// rows between n and the plan's size with zeros (their outputs are dropped). Padding costs the compute of the
// padded rows only; the batcher forms batches of exactly the preferred sizes whenever it can, so under load most
// batches need none. Warm-up compiles every plan of the instance and runs each twice (zeros in, outputs ignored;
// the second run timed for the batcher's costs) before the batcher starts, so no request pays for a compilation or
// for first-touch page faults; the server is ready only after that (InferenceService::Ready).
//
// Threads. An instance with several engine threads does its engine work (compile, warm-up, each batch's Run) on
// the compute lane it was assigned (compute_lanes.h), its batcher worker waiting meanwhile; the time a batch waits
// for a lane held by another instance counts as queue time, not compute. One-thread instances run inline, on
// their batcher worker or, for a request run to completion, on the thread that called Schedule.
//
// Thread-safety: an InferTask follows Task's rules. A SessionBatchRunner is used by one thread at a time: its
// batcher worker, or a thread running a request to completion (its session also by its lane, while the worker
// waits). InferState (the state shared by one request's
// tasks) is thread-safe where noted. Ownership: InferState owns its inputs, or borrows them from the request
// (borrowed_inputs), which Servable's contract keeps alive until the request's `done`.
#ifndef CNNSERVE_SERVER_SERVABLES_MODEL_RUNNER_H_
#define CNNSERVE_SERVER_SERVABLES_MODEL_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "engine/common/status.h"
#include "engine/runtime/model.h"
#include "engine/tensor/tensor.h"
#include "server/batching/dynamic_batcher.h"
#include "server/batching/task.h"
#include "server/servables/classification.h"
#include "server/servables/compute_lanes.h"
#include "server/servables/servable.h"

namespace cnnserve {

// The batch sizes an instance compiles: 1, the preferred sizes and max_batch_size, sorted, unique, each in
// [1, max(max_batch_size, 1)].
std::vector<int64_t> PlanBatchSizes(int64_t max_batch_size, const std::vector<int64_t>& preferred);
// The smallest of `plan_sizes` (sorted) that holds `items`; 0 when none does.
int64_t PaddedBatchSize(const std::vector<int64_t>& plan_sizes, int64_t items);

// Per-batch statistics a runner records (the model servable reports them; see ServableStats).
// Thread-safety: all methods are thread-safe.
class BatchStatsRecorder {
 public:
  // One executed batch of `items` images (before padding) with its phase durations.
  void RecordBatch(int64_t items, uint64_t input_ns, uint64_t infer_ns, uint64_t output_ns);
  // Adds the batch counters into `stats` (execution_count, compute_*, batch_stats).
  void AddTo(ServableStats& stats) const;

 private:
  mutable std::mutex mu_;
  uint64_t execution_count_ = 0;
  DurationStat input_, infer_, output_;
  std::vector<ServableStats::BatchStat> by_size_;  // index: batch size (0 unused)
};

// The part of one Run that its tasks share: inputs, output rows, timings and the first error.
struct InferState {
  int64_t item_input_size = 0;             // floats per image
  int64_t item_output_size = 0;            // floats per output row
  std::vector<float> inputs;               // num_items * item_input_size, written before scheduling, unless:
  const float* borrowed_inputs = nullptr;  // the same, read in place from the request (which outlives the tasks)
  float* outputs = nullptr;         // num_items * item_output_size (caller-owned); each task writes its own rows
  std::atomic<bool> failed{false};  // a task failed: the others are cancelled

  // Thread-safe. Keeps the first error (later ones are ignored) and sets `failed`.
  void RecordFailure(const Status& status);
  // Thread-safe. Adds one finished task's timings.
  void RecordTaskTimes(int64_t queue_us, int64_t inference_us);
  Status first_error() const;
  int64_t queue_us() const;      // the longest queue wait of the state's tasks
  int64_t inference_us() const;  // the summed run time of the batches that ran its images

 private:
  mutable std::mutex mu_;
  Status first_error_;
  int64_t queue_us_ = 0;
  int64_t inference_us_ = 0;
};

// Images [first_item, first_item + num_items()) of one Run.
class InferTask final : public Task {
 public:
  InferTask(std::shared_ptr<InferState> state, int64_t first_item, int64_t num_items, DoneCallback done);

  InferState& state() const { return *state_; }
  int64_t first_item() const { return first_item_; }
  const float* inputs() const;
  float* outputs() const;

 private:
  std::shared_ptr<InferState> state_;
  const int64_t first_item_;
};

class SessionBatchRunner final : public BatchRunner {
 public:
  // Creates the session, compiles a plan for each of `plan_sizes` (sorted, >= 1) and, with `warm_up`, runs each
  // plan twice (the second timed: PlanCosts). `stats` (may be null) receives every batch. With `lanes` (may be
  // null: everything inline), an instance whose model runs on several threads compiles, warms up and runs on the
  // lane it is assigned (compute_lanes.h). Errors: the engine's (a plan that cannot be compiled or run), naming
  // the batch size.
  static StatusOr<std::unique_ptr<SessionBatchRunner>> Create(std::shared_ptr<const Model> model,
                                                              std::vector<int64_t> plan_sizes, bool warm_up,
                                                              std::shared_ptr<BatchStatsRecorder> stats = nullptr,
                                                              ComputeLanes* lanes = nullptr);

  // Every task must be an InferTask. Pads the batch up to the next plan size, runs it, and writes each image's
  // output row and the task's queue and run times into its state. INTERNAL when the engine fails (every task
  // of the batch fails).
  Status RunBatch(std::span<Task* const> batch, std::span<Status> task_statuses) override;

  const std::vector<int64_t>& plan_sizes() const { return plan_sizes_; }
  // The timed warm-up run of each plan (empty without warm-up): the batcher's first plan costs, timed as the
  // batcher times runs (RunsOnCallingThread).
  std::vector<PlanCost> PlanCosts() const override { return plan_costs_; }
  // Inline (no lane): the engine runs on the caller's one thread. On a lane: on the lane's threads.
  bool RunsOnCallingThread() const override { return lane_ == nullptr; }
  // Batches run per padded size (index: the plan size), for tests and stats. Read on the worker thread or after
  // the batcher stopped.
  const std::vector<int64_t>& runs_by_plan_size() const { return runs_by_plan_size_; }
  // The lane the engine work runs on (null: inline on the caller's thread).
  const ComputeLane* lane() const { return lane_.get(); }

 private:
  SessionBatchRunner(std::shared_ptr<const Model> model, std::vector<int64_t> plan_sizes,
                     std::shared_ptr<BatchStatsRecorder> stats);
  // Runs `fn` on lane_, or inline without one.
  void OnLane(const std::function<void()>& fn);

  std::shared_ptr<const Model> model_;
  std::unique_ptr<Session> session_;
  std::vector<int64_t> plan_sizes_;
  int64_t item_input_size_;
  int64_t item_output_size_;
  Tensor batch_input_;                // max plan size x item input
  Tensor batch_output_;               // max plan size x item output
  std::vector<PlanCost> plan_costs_;  // set by Create's warm-up
  std::vector<int64_t> runs_by_plan_size_;
  std::shared_ptr<BatchStatsRecorder> stats_;
  std::shared_ptr<ComputeLane> lane_;  // null: inline
};

// The built-in null model's runner: writes zero rows without computing (the inputs are not read). Measures
// everything of the server but the engine.
class NullBatchRunner final : public BatchRunner {
 public:
  explicit NullBatchRunner(std::shared_ptr<BatchStatsRecorder> stats) : stats_(std::move(stats)) {}
  Status RunBatch(std::span<Task* const> batch, std::span<Status> task_statuses) override;

 private:
  std::shared_ptr<BatchStatsRecorder> stats_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_MODEL_RUNNER_H_
