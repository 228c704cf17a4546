#include "server/servables/model_runner.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "server/batching/clock.h"

namespace cnnserve {

std::vector<int64_t> PlanBatchSizes(int64_t max_batch_size, const std::vector<int64_t>& preferred) {
  const int64_t max_batch = std::max<int64_t>(max_batch_size, 1);
  std::vector<int64_t> sizes = {1, max_batch};
  for (int64_t size : preferred) {
    if (size >= 1 && size <= max_batch) sizes.push_back(size);
  }
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

int64_t PaddedBatchSize(const std::vector<int64_t>& plan_sizes, int64_t items) {
  const auto it = std::lower_bound(plan_sizes.begin(), plan_sizes.end(), items);
  return it == plan_sizes.end() ? 0 : *it;
}

void BatchStatsRecorder::RecordBatch(int64_t items, uint64_t input_ns, uint64_t infer_ns, uint64_t output_ns) {
  if (items < 1) return;
  std::lock_guard<std::mutex> lock(mu_);
  ++execution_count_;
  input_.Add(input_ns);
  infer_.Add(infer_ns);
  output_.Add(output_ns);
  if (by_size_.size() <= static_cast<size_t>(items)) by_size_.resize(static_cast<size_t>(items) + 1);
  ServableStats::BatchStat& b = by_size_[static_cast<size_t>(items)];
  b.batch_size = items;
  b.compute_input.Add(input_ns);
  b.compute_infer.Add(infer_ns);
  b.compute_output.Add(output_ns);
}

void BatchStatsRecorder::AddTo(ServableStats& stats) const {
  std::lock_guard<std::mutex> lock(mu_);
  stats.execution_count += execution_count_;
  stats.compute_input.count += input_.count;
  stats.compute_input.total_ns += input_.total_ns;
  stats.compute_infer.count += infer_.count;
  stats.compute_infer.total_ns += infer_.total_ns;
  stats.compute_output.count += output_.count;
  stats.compute_output.total_ns += output_.total_ns;
  for (const ServableStats::BatchStat& b : by_size_) {
    if (b.compute_infer.count > 0) stats.batch_stats.push_back(b);
  }
}

void InferState::RecordFailure(const Status& status) {
  if (status.ok()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (first_error_.ok()) first_error_ = status;
  failed.store(true, std::memory_order_release);
}

void InferState::RecordTaskTimes(int64_t queue_us, int64_t inference_us) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_us_ = std::max(queue_us_, queue_us);
  inference_us_ += inference_us;
}

Status InferState::first_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_error_;
}

int64_t InferState::queue_us() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_us_;
}

int64_t InferState::inference_us() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inference_us_;
}

InferTask::InferTask(std::shared_ptr<InferState> state, int64_t first_item, int64_t num_items, DoneCallback done)
    : Task(num_items, std::move(done)), state_(std::move(state)), first_item_(first_item) {}

const float* InferTask::inputs() const {
  const float* const base = state_->borrowed_inputs != nullptr ? state_->borrowed_inputs : state_->inputs.data();
  return base + first_item_ * state_->item_input_size;
}

float* InferTask::outputs() const { return state_->outputs + first_item_ * state_->item_output_size; }

SessionBatchRunner::SessionBatchRunner(std::shared_ptr<const Model> model, std::vector<int64_t> plan_sizes,
                                       std::shared_ptr<BatchStatsRecorder> stats)
    : model_(std::move(model)),
      session_(model_->NewSession()),
      plan_sizes_(std::move(plan_sizes)),
      item_input_size_(model_->item_input_size()),
      item_output_size_(model_->item_output_size()),
      batch_input_(Dims{plan_sizes_.back(), item_input_size_}),
      batch_output_(Dims{plan_sizes_.back(), item_output_size_}),
      runs_by_plan_size_(static_cast<size_t>(plan_sizes_.back() + 1), 0),
      stats_(std::move(stats)) {}

StatusOr<std::unique_ptr<SessionBatchRunner>> SessionBatchRunner::Create(std::shared_ptr<const Model> model,
                                                                         std::vector<int64_t> plan_sizes,
                                                                         bool warm_up,
                                                                         std::shared_ptr<BatchStatsRecorder> stats,
                                                                         ComputeLanes* lanes) {
  if (model == nullptr) return InvalidArgumentError("SessionBatchRunner: model is null");
  std::sort(plan_sizes.begin(), plan_sizes.end());
  plan_sizes.erase(std::unique(plan_sizes.begin(), plan_sizes.end()), plan_sizes.end());
  if (plan_sizes.empty() || plan_sizes.front() < 1) {
    return InvalidArgumentError("SessionBatchRunner: plan batch sizes must be >= 1 and not empty");
  }
  if (model->item_input_size() < 1 || model->item_output_size() < 1) {
    return InvalidArgumentError("SessionBatchRunner: the model has an empty input or output");
  }
  auto runner =
      std::unique_ptr<SessionBatchRunner>(new SessionBatchRunner(std::move(model), plan_sizes, std::move(stats)));
  if (lanes != nullptr) runner->lane_ = lanes->Assign(runner->model_->options().num_threads);
  Status status;
  runner->OnLane([&] {
    for (int64_t batch : runner->plan_sizes_) {
      if (status = runner->session_->Prepare(batch); !status.ok()) {
        status = status.WithContext("compiling the plan for batch size " + std::to_string(batch));
        return;
      }
      if (warm_up) {
        // batch_input_ is zero-filled: a harmless input for any model. Two runs: the first touches the plan's
        // memory, the second is timed (the batcher's first cost of this plan).
        // Timed as the batcher times a run: the thread's CPU time when the engine runs on it, else wall time.
        const auto now_us = [&] { return RunTimerMicros(*Clock::Real(), runner->RunsOnCallingThread()); };
        int64_t start_us = 0;
        for (int run = 0; run < 2 && status.ok(); ++run) {
          start_us = now_us();
          status = runner->session_->Run(runner->batch_input_.data(), batch, runner->batch_output_.data());
        }
        if (!status.ok()) {
          status = status.WithContext("warm-up run at batch size " + std::to_string(batch));
          return;
        }
        runner->plan_costs_.push_back(
            PlanCost{.batch_size = batch, .run_us = std::max<int64_t>(1, now_us() - start_us)});
      }
    }
  });
  if (!status.ok()) return status;
  return runner;
}

void SessionBatchRunner::OnLane(const std::function<void()>& fn) {
  if (lane_ != nullptr) {
    lane_->Run(fn);
  } else {
    fn();
  }
}

namespace {

uint64_t NanosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace

Status SessionBatchRunner::RunBatch(std::span<Task* const> batch, std::span<Status> task_statuses) {
  int64_t items = 0;
  for (Task* task : batch) items += task->num_items();
  const int64_t padded = PaddedBatchSize(plan_sizes_, items);
  if (padded == 0) {
    return InternalError("a batch of " + std::to_string(items) + " images is larger than the largest plan (" +
                         std::to_string(plan_sizes_.back()) + ")");
  }
  const auto start = std::chrono::steady_clock::now();
  const int64_t start_us = SteadyNowMicros();
  const float* src = nullptr;
  auto* const first = static_cast<InferTask*>(batch.front());
  if (batch.size() == 1 && items == padded) {
    src = first->inputs();  // one task that fills a plan exactly: no copy
  } else {
    float* dst = batch_input_.data();
    for (Task* task : batch) {
      const auto* infer = static_cast<const InferTask*>(task);
      const int64_t count = infer->num_items() * item_input_size_;
      std::memcpy(dst, infer->inputs(), static_cast<size_t>(count) * sizeof(float));
      dst += count;
    }
    std::memset(dst, 0, static_cast<size_t>((padded - items) * item_input_size_) * sizeof(float));
    src = batch_input_.data();
  }
  const uint64_t input_ns = NanosSince(start);
  // Timed inside the lane's closure: a lane shared with other instances may make the batch wait first, and that
  // wait counts as queueing (the tasks' queue time), not as compute.
  const auto handoff = std::chrono::steady_clock::now();
  auto run_start = handoff;
  uint64_t infer_ns = 0;
  Status status;
  OnLane([&] {
    run_start = std::chrono::steady_clock::now();
    status = session_->Run(src, padded, batch_output_.data());
    infer_ns = NanosSince(run_start);
  });
  if (!status.ok()) {
    return InternalError("inference failed at batch size " + std::to_string(padded) + ": " + status.message());
  }
  const int64_t lane_wait_us = std::chrono::duration_cast<std::chrono::microseconds>(run_start - handoff).count();
  const auto output_start = std::chrono::steady_clock::now();
  ++runs_by_plan_size_[static_cast<size_t>(padded)];

  const float* out = batch_output_.data();
  const int64_t inference_us = std::max<int64_t>(0, SteadyNowMicros() - start_us - lane_wait_us);
  for (size_t t = 0; t < batch.size(); ++t) {
    auto* task = static_cast<InferTask*>(batch[t]);
    const int64_t count = task->num_items() * item_output_size_;
    std::memcpy(task->outputs(), out, static_cast<size_t>(count) * sizeof(float));
    out += count;
    task->state().RecordTaskTimes(std::max<int64_t>(0, start_us - task->enqueue_time_us()) + lane_wait_us,
                                  inference_us);
    task_statuses[t] = OkStatus();
  }
  if (stats_ != nullptr) stats_->RecordBatch(items, input_ns, infer_ns, NanosSince(output_start));
  return OkStatus();
}

Status NullBatchRunner::RunBatch(std::span<Task* const> batch, std::span<Status> task_statuses) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t start_us = SteadyNowMicros();
  int64_t items = 0;
  for (size_t t = 0; t < batch.size(); ++t) {
    auto* task = static_cast<InferTask*>(batch[t]);
    items += task->num_items();
    std::memset(task->outputs(), 0,
                static_cast<size_t>(task->num_items() * task->state().item_output_size) * sizeof(float));
    task->state().RecordTaskTimes(std::max<int64_t>(0, start_us - task->enqueue_time_us()), 0);
    task_statuses[t] = OkStatus();
  }
  if (stats_ != nullptr) stats_->RecordBatch(items, 0, 0, NanosSince(start));
  return OkStatus();
}

}  // namespace cnnserve
