#include "server/servables/model_servable.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include "engine/common/strings.h"
#include "engine/common/units.h"
#include "server/servables/preprocess_config.h"

namespace cnnserve {

bool OverlapPays(int engine_threads, int cpus) {
  const int threads = engine_threads > 0 ? engine_threads : cpus;
  return threads == 1 || threads < cpus;
}

namespace {

// Everything about one Run that its tasks' callbacks need to answer it.
struct PendingRun {
  std::shared_ptr<const RunRequest> request;
  std::shared_ptr<InferState> state;
  RunResult* result = nullptr;
  std::function<void(Status)> done;
  int64_t start_us = 0;
  std::atomic<int64_t> pending{0};  // tasks not yet finished, plus one while Run is still scheduling
};

}  // namespace

StatusOr<std::unique_ptr<ModelServable>> ModelServable::Create(const ModelEntry& entry,
                                                               const VersionEntry& version,
                                                               const ModelServableOptions& options) {
  if (!entry.config_ok) return InvalidArgumentError(entry.config_error);
  if (version.state != ModelState::kReady) {
    return UnavailableError("version " + std::to_string(version.version) + " is not ready: " + version.reason);
  }
  const v1::ModelConfig& config = entry.config;
  const bool null_model = config.platform() == kPlatformNull;
  if (!null_model && version.model == nullptr) {
    return InternalError("version " + std::to_string(version.version) + " has no engine model");
  }
  auto servable = std::unique_ptr<ModelServable>(new ModelServable());
  servable->options_ = options;
  ServableInfo& info = servable->info_;
  info.name = entry.name;
  info.version = version.version;
  info.platform = config.platform();
  info.item_input_dims = version.item_input_dims;
  info.num_classes = version.num_classes;
  info.labels = entry.labels;
  info.max_batch_size = std::max<int64_t>(1, config.max_batch_size());
  info.config = config;
  if (version.graph != nullptr) {
    info.input_name = version.graph->input_name();
    info.output_name = version.graph->output_name();
  }
  if (info.item_input_dims.size() == 3) {
    CNN_ASSIGN_OR_RETURN(PreprocessOptions preprocess, PreprocessOptionsFromConfig(config, options.decode_limits));
    info.preprocess = std::move(preprocess);
  }
  servable->item_input_size_ = 1;
  for (int64_t d : info.item_input_dims) servable->item_input_size_ *= d;
  if (servable->item_input_size_ < 1 || info.num_classes < 1) {
    return InvalidArgumentError("model " + Quoted(info.name) + " has an empty input or output");
  }
  servable->stats_.name = info.name;
  servable->stats_.version = info.version;
  servable->stats_.platform = info.platform;

  const std::vector<int64_t> preferred(config.dynamic_batching().preferred_batch_size().begin(),
                                       config.dynamic_batching().preferred_batch_size().end());
  servable->plan_sizes_ = PlanBatchSizes(info.max_batch_size, preferred);
  servable->num_instances_ = std::max(1, config.instance_group().count());
  DynamicBatcherOptions batcher_options;
  batcher_options.name = info.name;
  batcher_options.max_batch_size = info.max_batch_size;
  batcher_options.max_queue_delay_us = config.dynamic_batching().max_queue_delay_us();
  const bool fixed_delay = config.dynamic_batching().policy() == v1::DynamicBatching::FIXED_DELAY;
  batcher_options.policy = fixed_delay ? BatchingPolicy::kFixedDelay : BatchingPolicy::kAdaptive;
  // Adaptive fills batches up to the compiled plans; the fixed delay runs at once at the configured sizes.
  batcher_options.preferred_batch_sizes = fixed_delay ? preferred : servable->plan_sizes_;
  batcher_options.max_queue_size = config.dynamic_batching().max_queue_size() > 0
                                       ? config.dynamic_batching().max_queue_size()
                                       : options.default_max_queue_size;
  batcher_options.num_instances = servable->num_instances_;
  const int cpus = options.lanes != nullptr ? options.lanes->cpus()
                                            : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  batcher_options.overlap_answers = null_model || OverlapPays(version.model->options().num_threads, cpus);
  const bool one_engine_thread = null_model || version.model->options().num_threads == 1;
  batcher_options.max_inline_run_us = one_engine_thread ? options.max_inline_run_us : 0;
  const std::shared_ptr<const Model> engine_model = version.model;
  const std::vector<int64_t> plan_sizes = servable->plan_sizes_;
  const std::shared_ptr<BatchStatsRecorder> batch_stats = servable->batch_stats_;
  ComputeLanes* const lanes = options.lanes;
  CNN_ASSIGN_OR_RETURN(
      servable->batcher_,
      DynamicBatcher::Create(batcher_options, [&](int /*instance*/) -> StatusOr<std::unique_ptr<BatchRunner>> {
        if (null_model) return std::unique_ptr<BatchRunner>(new NullBatchRunner(batch_stats));
        StatusOr<std::unique_ptr<SessionBatchRunner>> runner =
            SessionBatchRunner::Create(engine_model, plan_sizes, /*warm_up=*/true, batch_stats, lanes);
        if (!runner.ok()) return runner.status();
        return std::unique_ptr<BatchRunner>(*std::move(runner));
      }));
  return servable;
}

ModelServable::~ModelServable() {
  if (batcher_ != nullptr) (void)batcher_->Shutdown(SteadyNowMicros());
}

Status ModelServable::PrepareItem(const RunRequest& request, int64_t i, float* dst) const {
  ItemTarget target;
  target.model = info_.name;
  target.preprocess = info_.preprocess.has_value() ? &*info_.preprocess : nullptr;
  target.input_dims = info_.item_input_dims;
  target.dst = dst;
  const Status status =
      cnnserve::PrepareItem(request.items[static_cast<size_t>(i)], options_.decode_limits, target);
  if (status.ok()) return status;
  return Status(status.code(), request.ItemName(i) + ": " + status.message());
}

const float* ContiguousTensorItems(const RunRequest& request, int64_t item_floats) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(0, item_floats)) * sizeof(float);
  if (request.items.empty() || bytes == 0) return nullptr;
  const char* const base = request.items.front().data.data();
  if (reinterpret_cast<uintptr_t>(base) % alignof(float) != 0) return nullptr;
  for (size_t i = 0; i < request.items.size(); ++i) {
    const ImageItem& item = request.items[i];
    if (item.kind != ImageItem::Kind::kTensor || item.data.size() != bytes ||
        item.data.data() != base + i * bytes) {
      return nullptr;
    }
  }
  return reinterpret_cast<const float*>(base);
}

void ModelServable::RecordFinish(const Status& status, int64_t start_us, int64_t items, int64_t queue_us) {
  const uint64_t ns = static_cast<uint64_t>(std::max<int64_t>(0, SteadyNowMicros() - start_us)) * kNanosPerMicro;
  std::lock_guard<std::mutex> lock(stats_mu_);
  if (status.ok()) {
    stats_.success.Add(ns);
    stats_.inference_count += static_cast<uint64_t>(items);
    stats_.queue.Add(static_cast<uint64_t>(std::max<int64_t>(0, queue_us)) * kNanosPerMicro);
    stats_.last_inference_ms = WallNowMillis();
  } else {
    stats_.fail.Add(ns);
  }
}

void ModelServable::Run(std::shared_ptr<const RunRequest> request, RunResult* result,
                        std::function<void(Status)> done) {
  const int64_t start_us = SteadyNowMicros();
  const auto fail = [&](const Status& status) {
    RecordFinish(status, start_us, 0, 0);
    done(status);
  };
  if (request == nullptr || result == nullptr) return fail(InvalidArgumentError("Run: request or result is null"));
  const int64_t num_items = static_cast<int64_t>(request->items.size());
  if (num_items == 0) return fail(InvalidArgumentError("the request has no images"));
  if (request->deadline_us > 0 && start_us >= request->deadline_us) {
    return fail(DeadlineExceededError("the deadline passed before the request was scheduled"));
  }
  if (request->cancelled && request->cancelled()) return fail(CancelledError("the request was cancelled"));
  // A request the batcher would refuse is refused before any item is decoded.
  if (Status admitted = CheckAdmission(num_items, request->deadline_us); !admitted.ok()) return fail(admitted);

  // While this thread decodes, the batcher's adaptive policy knows these items are on their way.
  batcher_->AddDecoding(num_items);
  struct Decoded {
    DynamicBatcher* batcher;
    int64_t items;
    ~Decoded() { batcher->AddDecoding(-items); }
  } decoded{batcher_.get(), num_items};
  auto state = std::make_shared<InferState>();
  state->item_input_size = item_input_size_;
  state->item_output_size = info_.num_classes;
  // The request outlives every task (pending->request below), so borrowed inputs stay valid while they run.
  state->borrowed_inputs = ContiguousTensorItems(*request, item_input_size_);
  if (state->borrowed_inputs == nullptr) state->inputs.resize(static_cast<size_t>(num_items * item_input_size_));
  result->model = info_.name;
  result->version = info_.version;
  result->num_classes = info_.num_classes;
  result->num_items = num_items;
  result->scores.assign(static_cast<size_t>(num_items * info_.num_classes), 0.0f);
  result->probabilities.clear();
  result->tie_break.clear();
  state->outputs = result->scores.data();
  for (int64_t i = 0; i < num_items; ++i) {
    float* const dst = state->borrowed_inputs != nullptr ? nullptr : state->inputs.data() + i * item_input_size_;
    if (Status status = PrepareItem(*request, i, dst); !status.ok()) {
      return fail(status);
    }
  }
  const int64_t preprocess_us = SteadyNowMicros() - start_us;
  result->preprocess_us = preprocess_us;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.preprocess.Add(static_cast<uint64_t>(preprocess_us) * kNanosPerMicro);
  }

  auto pending = std::make_shared<PendingRun>();
  pending->request = request;
  pending->state = state;
  pending->result = result;
  pending->done = std::move(done);
  pending->start_us = start_us;
  const auto finish = [this](const std::shared_ptr<PendingRun>& p) {
    Status status = p->state->first_error();
    RunResult& r = *p->result;
    if (status.ok()) {
      r.queue_us = p->state->queue_us();
      r.compute_us = p->state->inference_us();
      r.probabilities.resize(r.scores.size());
      const size_t n = static_cast<size_t>(r.num_classes);
      for (int64_t i = 0; i < r.num_items; ++i) {
        const size_t row = static_cast<size_t>(i) * n;
        Softmax(std::span<const float>(r.scores.data() + row, n),
                std::span<float>(r.probabilities.data() + row, n));
      }
    }
    RecordFinish(status, p->start_us, r.num_items, p->state->queue_us());
    p->done(status);
  };
  const auto release = [finish](const std::shared_ptr<PendingRun>& p, int64_t count) {
    if (p->pending.fetch_sub(count, std::memory_order_acq_rel) == count) finish(p);
  };

  // Split the items into tasks of at most max_batch_size; answer once all of them have finished.
  const int64_t max_batch = info_.max_batch_size;
  const int64_t num_tasks = (num_items + max_batch - 1) / max_batch;
  pending->pending.store(num_tasks + 1);
  int64_t unscheduled = num_tasks;
  const std::function<bool()> cancelled = request->cancelled;
  for (int64_t first = 0; first < num_items; first += max_batch) {
    const int64_t count = std::min(max_batch, num_items - first);
    std::unique_ptr<Task> task =
        std::make_unique<InferTask>(state, first, count, [pending, release](Status status) {
          pending->state->RecordFailure(status);
          release(pending, 1);
        });
    task->set_deadline_us(request->deadline_us > 0 ? request->deadline_us : Clock::kInfiniteFuture);
    task->set_cancellation_check([state, cancelled] {
      return state->failed.load(std::memory_order_acquire) || (cancelled && cancelled());
    });
    if (Status status = batcher_->Schedule(task); !status.ok()) {
      state->RecordFailure(
          status.WithContext("model " + Quoted(info_.name) + " version " + std::to_string(info_.version)));
      break;
    }
    --unscheduled;
  }
  release(pending, unscheduled + 1);
}

Status ModelServable::CheckAdmission(int64_t items, int64_t deadline_us) {
  if (items < 1) return OkStatus();  // Run answers INVALID_ARGUMENT itself
  const int64_t max_batch = info_.max_batch_size;
  const Status status = batcher_->CheckAdmission((items + max_batch - 1) / max_batch, items,
                                                 deadline_us > 0 ? deadline_us : Clock::kInfiniteFuture);
  return status.WithContext("model " + Quoted(info_.name) + " version " + std::to_string(info_.version));
}

int64_t ModelServable::ExpectedWorkMicros(int64_t items) const {
  return batcher_ != nullptr && items >= 0 ? batcher_->ExpectedWorkMicros(items) : 0;
}

std::shared_ptr<void> ModelServable::ExpectIncoming(int64_t items) {
  if (batcher_ == nullptr || items <= 0) return nullptr;
  batcher_->AddIncoming(items);
  // The handle is destroyed before Run, while the request still holds this servable.
  return std::shared_ptr<void>(nullptr,
                               [batcher = batcher_.get(), items](void*) { batcher->AddIncoming(-items); });
}

ServableStats ModelServable::Stats() const {
  ServableStats stats;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats = stats_;
  }
  batch_stats_->AddTo(stats);
  stats.queue_depth = batcher_ != nullptr ? batcher_->QueueDepth() : 0;
  stats.inline_execution_count = batcher_ != nullptr ? batcher_->stats().batches_run_inline : 0;
  return stats;
}

Status ModelServable::Shutdown(int64_t drain_deadline_us) {
  if (batcher_ == nullptr) return OkStatus();
  return batcher_->Shutdown(drain_deadline_us);
}

}  // namespace cnnserve
