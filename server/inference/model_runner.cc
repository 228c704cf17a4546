#include "server/inference/model_runner.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "server/inference/inference_service.h"

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

void ClassifyRequest::RecordFailure(const Status& status) {
  if (status.ok()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (first_error_.ok()) first_error_ = status;
  failed.store(true, std::memory_order_release);
}

void ClassifyRequest::RecordTaskTimes(int64_t queue_us, int64_t inference_us) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_us_ = std::max(queue_us_, queue_us);
  inference_us_ += inference_us;
}

Status ClassifyRequest::first_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_error_;
}

int64_t ClassifyRequest::queue_us() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_us_;
}

int64_t ClassifyRequest::inference_us() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inference_us_;
}

ClassifyTask::ClassifyTask(std::shared_ptr<ClassifyRequest> request, int64_t first_image, int64_t num_images,
                           DoneCallback done)
    : Task(num_images, std::move(done)), request_(std::move(request)), first_image_(first_image) {}

const float* ClassifyTask::inputs() const {
  return request_->inputs.data() + first_image_ * request_->item_input_size;
}

SessionBatchRunner::SessionBatchRunner(std::shared_ptr<const Model> model, std::vector<int64_t> plan_sizes)
    : model_(std::move(model)),
      session_(model_->NewSession()),
      plan_sizes_(std::move(plan_sizes)),
      item_input_size_(model_->item_input_size()),
      item_output_size_(model_->item_output_size()),
      batch_input_(Dims{plan_sizes_.back(), item_input_size_}),
      batch_output_(Dims{plan_sizes_.back(), item_output_size_}),
      runs_by_plan_size_(static_cast<size_t>(plan_sizes_.back() + 1), 0) {}

StatusOr<std::unique_ptr<SessionBatchRunner>> SessionBatchRunner::Create(std::shared_ptr<const Model> model,
                                                                         std::vector<int64_t> plan_sizes,
                                                                         bool warm_up) {
  if (model == nullptr) return InvalidArgumentError("SessionBatchRunner: model is null");
  std::sort(plan_sizes.begin(), plan_sizes.end());
  plan_sizes.erase(std::unique(plan_sizes.begin(), plan_sizes.end()), plan_sizes.end());
  if (plan_sizes.empty() || plan_sizes.front() < 1) {
    return InvalidArgumentError("SessionBatchRunner: plan batch sizes must be >= 1 and not empty");
  }
  if (model->item_input_size() < 1 || model->item_output_size() < 1) {
    return InvalidArgumentError("SessionBatchRunner: the model has an empty input or output");
  }
  auto runner = std::unique_ptr<SessionBatchRunner>(new SessionBatchRunner(std::move(model), plan_sizes));
  for (int64_t batch : runner->plan_sizes_) {
    if (Status status = runner->session_->Prepare(batch); !status.ok()) {
      return status.WithContext("compiling the plan for batch size " + std::to_string(batch));
    }
    if (warm_up) {
      // batch_input_ is zero-filled: a harmless input for any model.
      if (Status status = runner->session_->Run(runner->batch_input_.data(), batch, runner->batch_output_.data());
          !status.ok()) {
        return status.WithContext("warm-up run at batch size " + std::to_string(batch));
      }
    }
  }
  return runner;
}

Status SessionBatchRunner::RunBatch(std::span<Task* const> batch, std::span<Status> task_statuses) {
  int64_t items = 0;
  for (Task* task : batch) items += task->num_items();
  const int64_t padded = PaddedBatchSize(plan_sizes_, items);
  if (padded == 0) {
    return InternalError("a batch of " + std::to_string(items) + " images is larger than the largest plan (" +
                         std::to_string(plan_sizes_.back()) + ")");
  }
  const int64_t start_us = SteadyNowMicros();
  const float* src = nullptr;
  auto* const first = static_cast<ClassifyTask*>(batch.front());
  if (batch.size() == 1 && items == padded) {
    src = first->inputs();  // one task that fills a plan exactly: no copy
  } else {
    float* dst = batch_input_.data();
    for (Task* task : batch) {
      const auto* classify = static_cast<const ClassifyTask*>(task);
      const int64_t count = classify->num_items() * item_input_size_;
      std::memcpy(dst, classify->inputs(), static_cast<size_t>(count) * sizeof(float));
      dst += count;
    }
    std::memset(dst, 0, static_cast<size_t>((padded - items) * item_input_size_) * sizeof(float));
    src = batch_input_.data();
  }
  if (Status status = session_->Run(src, padded, batch_output_.data()); !status.ok()) {
    return InternalError("inference failed at batch size " + std::to_string(padded) + ": " + status.message());
  }
  const int64_t inference_us = SteadyNowMicros() - start_us;
  ++runs_by_plan_size_[static_cast<size_t>(padded)];

  const float* out = batch_output_.data();
  for (size_t t = 0; t < batch.size(); ++t) {
    auto* task = static_cast<ClassifyTask*>(batch[t]);
    ClassifyRequest& request = task->request();
    for (int64_t i = 0; i < task->num_items(); ++i) {
      request.results[static_cast<size_t>(task->first_image() + i)] =
          TopK(std::span<const float>(out, static_cast<size_t>(item_output_size_)), request.top_k);
      out += item_output_size_;
    }
    request.RecordTaskTimes(std::max<int64_t>(0, start_us - task->enqueue_time_us()), inference_us);
    task_statuses[t] = OkStatus();
  }
  return OkStatus();
}

}  // namespace cnnserve
