#include "server/inference/inference_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "engine/graph/inspect.h"
#include "models/repository/model_repository.h"
#include "server/batching/dynamic_batcher.h"
#include "server/inference/classification.h"
#include "server/inference/image_input.h"
#include "server/inference/model_runner.h"
#include "server/preprocess/preprocess.h"

namespace cnnserve {
namespace {

constexpr int64_t kMicrosPerMilli = 1000;

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

std::string JoinSizes(const std::vector<int64_t>& sizes) {
  std::string out;
  for (int64_t s : sizes) out += (out.empty() ? "" : ",") + std::to_string(s);
  return out;
}

// One served version of a model: the repository's entry, its state as served (warm-up can still fail) and its
// batcher (non-null exactly when READY).
struct ServedVersion {
  const VersionEntry* entry = nullptr;
  ModelState state = ModelState::kUnavailable;
  std::string reason;
  std::vector<int64_t> plan_sizes;
  std::unique_ptr<DynamicBatcher> batcher;
};

struct ServedModel {
  const ModelEntry* entry = nullptr;
  PreprocessOptions preprocess;
  int64_t max_batch_size = 1;           // >= 1: the most images in one task
  std::string unavailable_reason;       // a model with no version to serve (an ensemble here)
  std::vector<ServedVersion> versions;  // ascending, parallel to entry->versions

  const ServedVersion* DefaultVersion() const {
    for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
      if (it->state == ModelState::kReady) return &*it;
    }
    return nullptr;
  }
  const ServedVersion* FindVersion(int64_t version) const {
    for (const ServedVersion& v : versions) {
      if (v.entry->version == version) return &v;
    }
    return nullptr;
  }
  // Why nothing can be served: the newest version's reason.
  std::string Reason() const {
    if (!unavailable_reason.empty()) return unavailable_reason;
    if (!versions.empty()) return versions.back().reason;
    return "no versions";
  }
};

// Everything about one Classify call that its tasks' callbacks need to answer it.
struct PendingClassify {
  std::shared_ptr<ClassifyRequest> request;
  v1::ClassifyResponse* response = nullptr;
  std::function<void(Status)> done;
  const ServedModel* model = nullptr;
  int64_t version = 0;
  std::string request_id;
  bool include_timings = false;
  int64_t start_us = 0;
  int64_t decode_us = 0;
  std::atomic<int64_t> pending{0};  // tasks not yet finished, plus one while Classify is still scheduling
};

void LogRequestError(const std::string& request_id, const std::string& model, const Status& status) {
  const spdlog::level::level_enum level = status.code() == StatusCode::kInvalidArgument ||
                                                  status.code() == StatusCode::kNotFound ||
                                                  status.code() == StatusCode::kCancelled
                                              ? spdlog::level::info
                                              : spdlog::level::warn;
  spdlog::log(level, "request {} (model \"{}\"): {}", request_id, model, status.ToString());
}

void FinishClassify(const std::shared_ptr<PendingClassify>& p) {
  const Status status = p->request->first_error();
  if (!status.ok()) {
    LogRequestError(p->request_id, p->model->entry->name, status);
    p->done(status);
    return;
  }
  v1::ClassifyResponse& response = *p->response;
  response.set_model(p->model->entry->name);
  response.set_version(p->version);
  response.set_request_id(p->request_id);
  response.clear_results();
  const std::vector<std::string>& labels = p->model->entry->labels;
  for (const std::vector<ScoredClass>& image : p->request->results) {
    v1::Classification* result = response.add_results();
    for (const ScoredClass& c : image) {
      v1::Class* out = result->add_classes();
      out->set_index(c.index);
      if (static_cast<size_t>(c.index) < labels.size()) out->set_label(labels[static_cast<size_t>(c.index)]);
      out->set_score(c.score);
      out->set_probability(c.probability);
    }
  }
  if (p->include_timings) {
    v1::Timings* timings = response.mutable_timings();
    timings->set_decode_us(p->decode_us);
    timings->set_queue_us(p->request->queue_us());
    timings->set_inference_us(p->request->inference_us());
    timings->set_total_us(SteadyNowMicros() - p->start_us);
  }
  p->done(OkStatus());
}

void ReleasePending(const std::shared_ptr<PendingClassify>& p, int64_t count) {
  if (p->pending.fetch_sub(count, std::memory_order_acq_rel) == count) FinishClassify(p);
}

class InferenceServiceImpl final : public InferenceService {
 public:
  InferenceServiceImpl(const InferenceServiceOptions& options, std::unique_ptr<ModelRepository> repository)
      : options_(options), repository_(std::move(repository)) {
    limits_.max_image_bytes = options.max_image_bytes;
    limits_.max_pixels = options.max_pixels;
    request_id_prefix_ = "r" + std::to_string(SteadyNowMicros() % 1'000'000'000) + "-";
  }

  // Stops the batchers while everything their callbacks use is still alive: queued requests get UNAVAILABLE,
  // running batches finish.
  ~InferenceServiceImpl() override { (void)Shutdown(SteadyNowMicros()); }

  void LoadAll();

  void Classify(const v1::ClassifyRequest& request, v1::ClassifyResponse* response, int64_t deadline_us,
                std::function<bool()> cancelled, std::function<void(Status)> done) override;
  Status ListModels(v1::ListModelsResponse* response) const override;
  Status DescribeModel(const v1::DescribeModelRequest& request,
                       v1::DescribeModelResponse* response) const override;
  bool Ready() const override { return ready_.load() && !shutting_down_.load(); }
  std::vector<std::string> ReadyModels() const override;
  Status Shutdown(int64_t drain_deadline_us) override;

 private:
  void LoadModel(const ModelEntry& entry);
  // The model and version a request asks for (NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE as documented).
  Status Resolve(const std::string& name, int64_t version, const ServedModel** model,
                 const ServedVersion** served) const;
  // Counts the images of every input (validating raw tensors), then decodes/copies them into request->inputs.
  Status PrepareInputs(const v1::ClassifyRequest& request, const ServedModel& model, const VersionEntry& version,
                       ClassifyRequest* prepared) const;
  void FillSummary(const ServedModel& model, v1::ModelSummary* summary) const;

  const InferenceServiceOptions options_;
  DecodeLimits limits_;
  std::unique_ptr<ModelRepository> repository_;
  std::map<std::string, ServedModel, std::less<>> models_;  // written only by LoadAll
  std::string request_id_prefix_;
  std::atomic<uint64_t> next_request_{0};
  std::atomic<bool> ready_{false};
  std::atomic<bool> shutting_down_{false};

  std::mutex shutdown_mu_;  // serialises Shutdown
  bool shutdown_done_ = false;
  Status shutdown_result_;
};

void InferenceServiceImpl::LoadAll() {
  for (const ModelEntry& entry : repository_->models()) LoadModel(entry);
  int ready_versions = 0;
  int unavailable_versions = 0;
  for (const auto& [name, model] : models_) {
    for (const ServedVersion& v : model.versions) {
      (v.state == ModelState::kReady ? ready_versions : unavailable_versions)++;
    }
  }
  spdlog::info("model repository {}: {} model(s), {} version(s) ready, {} unavailable", repository_->root(),
               models_.size(), ready_versions, unavailable_versions);
  ready_.store(true);
}

void InferenceServiceImpl::LoadModel(const ModelEntry& entry) {
  ServedModel& model = models_[entry.name];
  model.entry = &entry;
  for (const VersionEntry& version : entry.versions) {
    ServedVersion served;
    served.entry = &version;
    served.state = version.state;
    served.reason = version.reason;
    model.versions.push_back(std::move(served));
  }
  auto mark_all = [&](const std::string& reason) {
    for (ServedVersion& v : model.versions) {
      v.state = ModelState::kUnavailable;
      v.reason = reason;
    }
  };
  if (!entry.config_ok) {
    spdlog::error("model {}: UNAVAILABLE: {}", entry.name, entry.config_error);
    return;
  }
  if (entry.config.platform() == kPlatformEnsemble) {
    model.unavailable_reason = entry.config_path + ": platform \"ensemble\" is not served by this server yet";
    spdlog::error("model {}: UNAVAILABLE: {}", entry.name, model.unavailable_reason);
    return;
  }
  const v1::ModelConfig& config = entry.config;
  if (config.input().dims_size() == 3) {
    StatusOr<PreprocessOptions> preprocess = PreprocessOptionsFromConfig(config, limits_);
    if (!preprocess.ok()) {
      mark_all(entry.config_path + ": " + preprocess.status().message());
    } else {
      model.preprocess = *std::move(preprocess);
    }
  }
  model.max_batch_size = std::max<int64_t>(1, config.max_batch_size());
  const std::vector<int64_t> preferred(config.dynamic_batching().preferred_batch_size().begin(),
                                       config.dynamic_batching().preferred_batch_size().end());
  for (ServedVersion& served : model.versions) {
    const VersionEntry& version = *served.entry;
    if (served.state != ModelState::kReady) {
      spdlog::error("model {} version {}: UNAVAILABLE: {}", entry.name, version.version, served.reason);
      continue;
    }
    served.plan_sizes = PlanBatchSizes(model.max_batch_size, preferred);
    DynamicBatcherOptions batcher_options;
    batcher_options.max_batch_size = model.max_batch_size;
    batcher_options.max_queue_delay_us = config.dynamic_batching().max_queue_delay_us();
    batcher_options.preferred_batch_sizes = preferred;
    batcher_options.max_queue_size = config.dynamic_batching().max_queue_size() > 0
                                         ? config.dynamic_batching().max_queue_size()
                                         : options_.default_max_queue_size;
    batcher_options.num_instances = std::max(1, config.instance_group().count());
    const int64_t warm_start_us = SteadyNowMicros();
    const std::shared_ptr<const Model> engine_model = version.model;
    const std::vector<int64_t> plan_sizes = served.plan_sizes;
    StatusOr<std::unique_ptr<DynamicBatcher>> batcher = DynamicBatcher::Create(
        batcher_options, [&engine_model, &plan_sizes](int /*instance*/) -> StatusOr<std::unique_ptr<BatchRunner>> {
          StatusOr<std::unique_ptr<SessionBatchRunner>> runner =
              SessionBatchRunner::Create(engine_model, plan_sizes, /*warm_up=*/true);
          if (!runner.ok()) return runner.status();
          return std::unique_ptr<BatchRunner>(*std::move(runner));
        });
    if (!batcher.ok()) {
      served.state = ModelState::kUnavailable;
      served.reason = version.model_path + ": " + batcher.status().message();
      spdlog::error("model {} version {}: UNAVAILABLE: {}", entry.name, version.version, served.reason);
      continue;
    }
    served.batcher = *std::move(batcher);
    spdlog::info(
        "model {} version {}: READY, input {}, {} classes, batch sizes {} (max {}), {} instance(s) x {} "
        "thread(s); "
        "loaded in {:.1f} ms, warmed up in {:.1f} ms",
        entry.name, version.version, DimsToString(version.item_input_dims), version.num_classes,
        JoinSizes(served.plan_sizes), model.max_batch_size, batcher_options.num_instances,
        version.model->options().num_threads, static_cast<double>(version.load_time_us) / kMicrosPerMilli,
        static_cast<double>(SteadyNowMicros() - warm_start_us) / kMicrosPerMilli);
  }
}

Status InferenceServiceImpl::Resolve(const std::string& name, int64_t version, const ServedModel** model,
                                     const ServedVersion** served) const {
  if (name.empty()) return InvalidArgumentError("field model is empty: name a model (see ListModels)");
  const auto it = models_.find(name);
  if (it == models_.end()) return NotFoundError("model " + Quoted(name) + " not found");
  *model = &it->second;
  if (version < 0) {
    return InvalidArgumentError("field version: " + std::to_string(version) +
                                " must be >= 0 (0: the newest ready version)");
  }
  if (version == 0) {
    *served = it->second.DefaultVersion();
    if (*served == nullptr) {
      return UnavailableError("model " + Quoted(name) + " is unavailable: " + it->second.Reason());
    }
    return OkStatus();
  }
  *served = it->second.FindVersion(version);
  if (*served == nullptr) {
    std::vector<int64_t> versions;
    for (const ServedVersion& v : it->second.versions) {
      if (v.entry->version > 0) versions.push_back(v.entry->version);
    }
    return NotFoundError("version " + std::to_string(version) + " of model " + Quoted(name) +
                         " not found (versions: " + (versions.empty() ? "none" : JoinSizes(versions)) + ")");
  }
  if ((*served)->state != ModelState::kReady) {
    return UnavailableError("version " + std::to_string(version) + " of model " + Quoted(name) +
                            " is unavailable: " + (*served)->reason);
  }
  return OkStatus();
}

Status InferenceServiceImpl::PrepareInputs(const v1::ClassifyRequest& request, const ServedModel& model,
                                           const VersionEntry& version, ClassifyRequest* prepared) const {
  const Dims& item_dims = version.item_input_dims;
  const int64_t item_size = prepared->item_input_size;
  const auto where = [](int i) { return "inputs[" + std::to_string(i) + "]"; };

  // Pass 1: count the images (a raw tensor may carry N of them) and check the tensors' shapes and sizes.
  int64_t num_images = 0;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const v1::Input& input = request.inputs(i);
    switch (input.kind_case()) {
      case v1::Input::kImage:
        ++num_images;
        break;
      case v1::Input::kTensor: {
        const Dims shape(input.tensor().shape().begin(), input.tensor().shape().end());
        if (Status status = ValidateRawTensor(shape, input.tensor().data().size(), item_dims); !status.ok()) {
          return InvalidArgumentError(where(i) + ".tensor: " + status.message());
        }
        num_images += shape.size() == 4 ? shape[0] : 1;
        break;
      }
      case v1::Input::KIND_NOT_SET:
        return InvalidArgumentError(where(i) + ": neither image nor tensor is set");
    }
    if (num_images > options_.max_images_per_request) {
      return InvalidArgumentError("inputs: more than max_images_per_request (" +
                                  std::to_string(options_.max_images_per_request) +
                                  ") images (counting each raw tensor's batch)");
    }
  }

  // Pass 2: decode and preprocess each image, copy each tensor.
  prepared->inputs.resize(static_cast<size_t>(num_images * item_size));
  prepared->results.resize(static_cast<size_t>(num_images));
  float* dst = prepared->inputs.data();
  for (int i = 0; i < request.inputs_size(); ++i) {
    const v1::Input& input = request.inputs(i);
    if (input.kind_case() == v1::Input::kImage) {
      StatusOr<DecodedImage> image = DecodeImage(input.image(), limits_);
      if (!image.ok()) return Status(image.status().code(), where(i) + ".image: " + image.status().message());
      if (Status status = PreprocessImage(*image, model.preprocess, dst); !status.ok()) {
        return Status(status.code(), where(i) + ".image: " + status.message());
      }
      dst += item_size;
    } else {
      const std::string& data = input.tensor().data();
      std::memcpy(dst, data.data(), data.size());  // little-endian float32, as the host
      dst += data.size() / sizeof(float);
    }
  }
  return OkStatus();
}

void InferenceServiceImpl::Classify(const v1::ClassifyRequest& request, v1::ClassifyResponse* response,
                                    int64_t deadline_us, std::function<bool()> cancelled,
                                    std::function<void(Status)> done) {
  const int64_t start_us = SteadyNowMicros();
  const std::string request_id = request.request_id().empty()
                                     ? request_id_prefix_ + std::to_string(next_request_.fetch_add(1) + 1)
                                     : request.request_id();
  const auto fail = [&](const Status& status) {
    LogRequestError(request_id, request.model(), status);
    done(status);
  };
  if (response == nullptr) return fail(InvalidArgumentError("Classify: response is null"));
  if (shutting_down_.load()) return fail(UnavailableError("shutting down: not accepting new requests"));

  const ServedModel* model = nullptr;
  const ServedVersion* served = nullptr;
  if (Status status = Resolve(request.model(), request.version(), &model, &served); !status.ok()) {
    return fail(status);
  }
  if (request.top_k() < 0) {
    return fail(InvalidArgumentError("field top_k: " + std::to_string(request.top_k()) +
                                     " must be >= 0 (0 means " + std::to_string(kDefaultTopK) + ")"));
  }
  if (request.inputs_size() == 0) {
    return fail(InvalidArgumentError("field inputs: the request has no inputs (send 1 to " +
                                     std::to_string(options_.max_images_per_request) + " images)"));
  }
  if (request.inputs_size() > options_.max_images_per_request) {
    return fail(InvalidArgumentError("field inputs: " + std::to_string(request.inputs_size()) +
                                     " inputs, more than max_images_per_request (" +
                                     std::to_string(options_.max_images_per_request) + ")"));
  }
  if (deadline_us > 0 && start_us >= deadline_us) {
    return fail(DeadlineExceededError("the deadline passed before the request was scheduled"));
  }
  if (cancelled && cancelled()) return fail(CancelledError("the request was cancelled"));

  const VersionEntry& version = *served->entry;
  auto prepared = std::make_shared<ClassifyRequest>();
  prepared->item_input_size = version.model->item_input_size();
  prepared->top_k = static_cast<int>(
      std::min<int64_t>(request.top_k() == 0 ? kDefaultTopK : request.top_k(), version.num_classes));
  if (Status status = PrepareInputs(request, *model, version, prepared.get()); !status.ok()) return fail(status);
  const int64_t num_images = static_cast<int64_t>(prepared->results.size());

  auto pending = std::make_shared<PendingClassify>();
  pending->request = prepared;
  pending->response = response;
  pending->done = std::move(done);
  pending->model = model;
  pending->version = version.version;
  pending->request_id = request_id;
  pending->include_timings = request.include_timings();
  pending->start_us = start_us;
  pending->decode_us = SteadyNowMicros() - start_us;

  // Split the images into tasks of at most max_batch_size; answer once all of them have finished.
  const int64_t num_tasks = (num_images + model->max_batch_size - 1) / model->max_batch_size;
  pending->pending.store(num_tasks + 1);
  int64_t unscheduled = num_tasks;
  for (int64_t first = 0; first < num_images; first += model->max_batch_size) {
    const int64_t count = std::min(model->max_batch_size, num_images - first);
    std::unique_ptr<Task> task = std::make_unique<ClassifyTask>(prepared, first, count, [pending](Status status) {
      pending->request->RecordFailure(status);
      ReleasePending(pending, 1);
    });
    task->set_deadline_us(deadline_us > 0 ? deadline_us : Clock::kInfiniteFuture);
    task->set_cancellation_check([prepared, cancelled] {
      return prepared->failed.load(std::memory_order_acquire) || (cancelled && cancelled());
    });
    if (Status status = served->batcher->Schedule(task); !status.ok()) {
      prepared->RecordFailure(status.WithContext("model " + Quoted(model->entry->name) + " version " +
                                                 std::to_string(version.version)));
      break;
    }
    --unscheduled;
  }
  ReleasePending(pending, unscheduled + 1);
}

void InferenceServiceImpl::FillSummary(const ServedModel& model, v1::ModelSummary* summary) const {
  const ModelEntry& entry = *model.entry;
  summary->set_name(entry.name);
  for (const ServedVersion& v : model.versions) {
    v1::ModelVersionState* state = summary->add_versions();
    state->set_version(v.entry->version);
    state->set_state(std::string(ModelStateName(v.state)));
    state->set_reason(v.reason);
  }
  if (model.versions.empty()) {
    v1::ModelVersionState* state = summary->add_versions();
    state->set_state(std::string(ModelStateName(ModelState::kUnavailable)));
    state->set_reason(model.Reason());
  }
  for (int64_t d : entry.InputDims()) summary->add_input_shape(d);
  summary->set_num_classes(static_cast<int32_t>(entry.NumClasses()));
  if (entry.config_ok) summary->set_platform(entry.config.platform());
}

Status InferenceServiceImpl::ListModels(v1::ListModelsResponse* response) const {
  if (response == nullptr) return InvalidArgumentError("ListModels: response is null");
  response->clear_models();
  for (const auto& [name, model] : models_) FillSummary(model, response->add_models());
  return OkStatus();
}

Status InferenceServiceImpl::DescribeModel(const v1::DescribeModelRequest& request,
                                           v1::DescribeModelResponse* response) const {
  if (response == nullptr) return InvalidArgumentError("DescribeModel: response is null");
  if (request.model().empty()) return InvalidArgumentError("field model is empty: name a model (see ListModels)");
  const auto it = models_.find(request.model());
  if (it == models_.end()) return NotFoundError("model " + Quoted(request.model()) + " not found");
  const ServedModel& model = it->second;
  if (request.version() < 0) {
    return InvalidArgumentError("field version: " + std::to_string(request.version()) +
                                " must be >= 0 (0: the newest ready version)");
  }
  const ServedVersion* version = nullptr;
  if (request.version() == 0) {
    version = model.DefaultVersion();
    for (auto v = model.versions.rbegin(); version == nullptr && v != model.versions.rend(); ++v) {
      if (v->entry->graph != nullptr) version = &*v;
    }
  } else {
    version = model.FindVersion(request.version());
    if (version == nullptr) {
      return NotFoundError("version " + std::to_string(request.version()) + " of model " +
                           Quoted(request.model()) + " not found");
    }
  }
  response->Clear();
  FillSummary(model, response->mutable_summary());
  if (model.entry->config_ok) *response->mutable_config() = model.entry->config;
  if (version != nullptr && version->entry->graph != nullptr) {
    const GraphStats stats = ComputeGraphStats(*version->entry->graph);
    for (const LayerStats& layer : stats.layers) {
      v1::LayerInfo* info = response->add_layers();
      info->set_name(layer.name);
      info->set_op(layer.op);
      for (int64_t d : layer.output_dims) info->add_output_shape(d);
      info->set_params(layer.params);
      info->set_macs(layer.macs);
      info->set_receptive_field(layer.global_receptive_field ? 0 : std::max(layer.receptive_h, layer.receptive_w));
    }
    response->set_total_params(stats.total_params);
    response->set_total_macs(stats.total_macs);
    response->set_layer_table(FormatStatsTable(stats));
  }
  return OkStatus();
}

std::vector<std::string> InferenceServiceImpl::ReadyModels() const {
  std::vector<std::string> names;
  if (!Ready()) return names;
  for (const auto& [name, model] : models_) {
    if (model.DefaultVersion() != nullptr) names.push_back(name);
  }
  return names;
}

Status InferenceServiceImpl::Shutdown(int64_t drain_deadline_us) {
  std::lock_guard<std::mutex> lock(shutdown_mu_);
  if (shutdown_done_) return shutdown_result_;
  shutting_down_.store(true);
  spdlog::info("inference: draining every model's queue");
  // All batchers drain at once; each Shutdown blocks until its queue is empty or the deadline passes.
  std::vector<DynamicBatcher*> batchers;
  std::vector<std::string> names;
  for (const auto& [name, model] : models_) {
    for (const ServedVersion& v : model.versions) {
      if (v.batcher != nullptr) {
        batchers.push_back(v.batcher.get());
        names.push_back(name + " version " + std::to_string(v.entry->version));
      }
    }
  }
  std::vector<Status> results(batchers.size());
  std::vector<std::thread> threads;
  threads.reserve(batchers.size());
  for (size_t i = 0; i < batchers.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = batchers[i]->Shutdown(drain_deadline_us); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) {
      spdlog::warn("model {}: {}", names[i], results[i].ToString());
      if (shutdown_result_.ok()) shutdown_result_ = results[i].WithContext("model " + names[i]);
    }
  }
  shutdown_done_ = true;
  return shutdown_result_;
}

}  // namespace

int64_t SteadyNowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

StatusOr<std::unique_ptr<InferenceService>> InferenceService::Create(const InferenceServiceOptions& options) {
  if (options.total_threads < 0) {
    return InvalidArgumentError("total_threads " + std::to_string(options.total_threads) + " must be >= 0");
  }
  for (const auto& [field, value] :
       {std::pair{"max_images_per_request", options.max_images_per_request},
        std::pair{"max_pixels", options.max_pixels}, std::pair{"max_image_bytes", options.max_image_bytes},
        std::pair{"default_max_queue_size", options.default_max_queue_size}}) {
    if (value < 1) return InvalidArgumentError(std::string(field) + " " + std::to_string(value) + " must be >= 1");
  }
  ModelRepositoryOptions repository_options;
  repository_options.total_threads = options.total_threads;
  repository_options.default_max_queue_size = options.default_max_queue_size;
  CNN_ASSIGN_OR_RETURN(std::unique_ptr<ModelRepository> repository,
                       ModelRepository::Load(options.model_repository, repository_options));
  auto service = std::make_unique<InferenceServiceImpl>(options, std::move(repository));
  service->LoadAll();
  return std::unique_ptr<InferenceService>(std::move(service));
}

}  // namespace cnnserve
