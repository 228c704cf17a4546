#include "server/service/inference_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <utility>

#include "engine/common/units.h"
#include "engine/graph/inspect.h"
#include "models/repository/model_repository.h"
#include "server/batching/dynamic_batcher.h"
#include "server/ensemble/ensemble_servable.h"
#include "server/preprocess/preprocess.h"
#include "server/preprocess/preprocess_pool.h"
#include "server/servables/cached_servable.h"
#include "server/servables/classification.h"
#include "server/servables/layer_servable.h"
#include "server/servables/model_servable.h"
#include "server/service/admission.h"
#include "server/service/load_log.h"
#include "server/service/model_slot.h"
#include "server/service/request_error_log.h"
#include "server/service/repository_poller.h"
#include "server/service/request_gate.h"

namespace cnnserve {
namespace {

// How often a retiring version checks whether requests still hold it.
constexpr auto kRetirePollInterval = std::chrono::milliseconds(1);
constexpr char kUnloaded[] = "unloaded";
constexpr int kMinDecodeWorkers = 2;

// Whether any item must be decoded or preprocessed (raw tensors are only checked and copied).
// Removes every occurrence of `prefix` (the repository root and a '/') from `text`.
void StripPrefix(const std::string& prefix, std::string* text) {
  for (size_t at = text->find(prefix); at != std::string::npos; at = text->find(prefix, at)) {
    text->erase(at, prefix.size());
  }
}

// Paths and reasons of `entry` relative to the repository root: they reach clients (DESIGN.md: never the root).
void MakePathsRelative(const std::string& root_prefix, ModelEntry* entry) {
  StripPrefix(root_prefix, &entry->config_path);
  StripPrefix(root_prefix, &entry->config_error);
  for (VersionEntry& version : entry->versions) {
    StripPrefix(root_prefix, &version.model_path);
    StripPrefix(root_prefix, &version.reason);
  }
}

class InferenceServiceImpl final : public InferenceService {
 public:
  InferenceServiceImpl(const InferenceServiceOptions& options, std::string root,
                       const ModelRepositoryOptions& repository_options)
      : options_(options),
        root_(std::move(root)),
        root_prefix_(std::filesystem::path(root_).lexically_normal().string()),
        repository_options_(repository_options),
        lanes_(options.total_threads),
        gate_(options.max_in_flight),
        response_cache_(std::make_shared<ResponseCache>(options.response_cache_bytes)) {
    servable_options_.decode_limits.max_image_bytes = options.max_image_bytes;
    servable_options_.decode_limits.max_pixels = options.max_pixels;
    servable_options_.decode_limits.max_decoded_bytes = options.max_decoded_image_bytes;
    servable_options_.decode_limits.budget = *DecodeBudget::Create(options.max_decode_memory_bytes);  // checked
    servable_options_.default_max_queue_size = options.default_max_queue_size;
    servable_options_.lanes = &lanes_;
    servable_options_.max_inline_run_us = options.max_inline_run_us;
    layer_servables_ = std::make_unique<LayerServables>(servable_options_);
    // OpenCV's parallel loops (colour conversion, 8-bit resize) get the engine's cores, not every core.
    SetPreprocessThreads(lanes_.cpus());
    // Two workers at least, so that one costly image does not hold every decode.
    decode_pool_ = *PreprocessPool::Create({.threads = std::max(kMinDecodeWorkers, lanes_.cpus()),
                                            .max_queued = options.max_decode_queue});  // checked by Create
    request_id_prefix_ = "r" + std::to_string(SteadyNowMicros() % 1'000'000'000) + "-";
    while (root_prefix_.size() > 1 && root_prefix_.back() == '/') root_prefix_.pop_back();
    root_prefix_ += '/';
  }

  // Stops every servable while everything their callbacks use is still alive: queued requests get UNAVAILABLE,
  // running batches finish.
  ~InferenceServiceImpl() override { (void)Shutdown(SteadyNowMicros()); }

  void LoadAll(const ModelRepository& repository);
  // Poll mode: starts the poller from `initial`, the scan taken before the repository was loaded.
  Status StartPoller(RepositorySnapshot initial);

  void Infer(InferRequest request, std::shared_ptr<InferOutcome> outcome, std::function<void(Status)> done) override;
  StatusOr<std::shared_ptr<Servable>> Find(const std::string& name, int64_t version) const override;
  StatusOr<std::shared_ptr<Servable>> FindLayer(const std::string& name, int64_t version,
                                                const std::string& layer) override;
  const DecodeLimits& decode_limits() const override { return servable_options_.decode_limits; }
  Status RunOnDecodeWorker(std::function<void()> work) override { return decode_pool_->Submit(std::move(work)); }
  std::vector<VersionRow> Index() const override;
  StatusOr<std::vector<ServableStats>> Statistics(const std::string& name, int64_t version) const override;
  Status LoadModel(const std::string& name) override;
  Status UnloadModel(const std::string& name) override;
  const InferenceServiceOptions& options() const override { return options_; }
  std::vector<ModelSummary> Models() const override;
  StatusOr<ModelDescription> Describe(const std::string& name, int64_t version) const override;
  bool Ready() const override;
  std::vector<std::string> ReadyModels() const override;
  Status Shutdown(int64_t drain_deadline_us) override;

 private:
  // Runs `run` on `servable` (decodes, schedules) and marks the request prepared; `done` answers it.
  void LogRequestError(const std::string& request_id, const std::string& model, const Status& status) {
    error_log_.Log(request_id, model, status, SteadyNowMicros());
  }
  void Launch(const std::shared_ptr<InferOutcome>& outcome, std::shared_ptr<RunRequest> run, std::string model,
              std::function<void(Status)> done);
  // Builds the slot of one model entry (loads, warms up; ensembles resolve their members through Find, so
  // plain models must be published first). Does not touch the map.
  std::shared_ptr<ModelSlot> BuildSlot(std::shared_ptr<const ModelEntry> entry) const;
  std::shared_ptr<const ModelSlot> FindSlot(const std::string& name) const;
  // Removes `name` from the map and returns its slot (null when absent).
  std::shared_ptr<const ModelSlot> Unpublish(const std::string& name);
  // Publishes `slot` under its name and returns the one it replaced (may be null).
  std::shared_ptr<const ModelSlot> Publish(std::shared_ptr<const ModelSlot> slot);
  // Waits until no request can reach the servables of a replaced slot any more (every other holder let go, or
  // the drain timeout, or shutdown), then drains and stops them.
  void Retire(std::shared_ptr<const ModelSlot> slot, const std::string& why) const;
  // LoadModel / UnloadModel without the mode check (the poller's way in); the name is checked.
  Status LoadModelNow(const std::string& name);
  Status UnloadModelNow(const std::string& name);
  // Poll mode: the folder is gone: drop the model from the index and retire it.
  Status RemoveModel(const std::string& name);
  // Publishes the outcome of a failed load of `name`: a serving model keeps serving with `load_error` set;
  // otherwise `failed` (its reasons) is listed.
  void PublishFailedLoad(const std::string& name, std::shared_ptr<ModelSlot> failed, const std::string& why);
  ModelSummary Summarize(const ModelSlot& model) const;

  const InferenceServiceOptions options_;
  const std::string root_;
  std::string root_prefix_;  // root_ and '/', stripped from client-facing paths
  const ModelRepositoryOptions repository_options_;
  ComputeLanes lanes_;  // multi-threaded engine work of every model, over --threads cores (compute_lanes.h)
  RequestGate gate_;    // requests between Infer and their answer (--max-in-flight, the drain)
  RequestErrorLog error_log_;  // every failed request's line; load errors counted per second
  const std::shared_ptr<ResponseCache> response_cache_;  // of the models with response_cache enabled
  ModelServableOptions servable_options_;
  std::unique_ptr<LayerServables> layer_servables_;  // FindLayer's cache; after servable_options_ and lanes_
  std::string request_id_prefix_;
  std::atomic<uint64_t> next_request_{0};
  std::atomic<bool> ready_{false};
  std::atomic<bool> shutting_down_{false};
  // Set by Shutdown when its drain deadline passed before every request was prepared: a request still waiting
  // for a decode worker then ends DEADLINE_EXCEEDED instead of being decoded.
  std::atomic<bool> drain_expired_{false};

  mutable std::shared_mutex mu_;  // guards models_ (the map; slots are immutable)
  std::map<std::string, std::shared_ptr<const ModelSlot>, std::less<>> models_;
  std::mutex load_mu_;                        // serialises LoadModel / UnloadModel / RemoveModel
  std::unique_ptr<RepositoryPoller> poller_;  // poll mode only; set once in Create, stopped by Shutdown

  std::mutex shutdown_mu_;  // serialises Shutdown
  bool shutdown_done_ = false;
  Status shutdown_result_;
  // Last: destroyed first, so the jobs it still runs find everything above alive.
  std::unique_ptr<PreprocessPool> decode_pool_;
};

std::shared_ptr<ModelSlot> InferenceServiceImpl::BuildSlot(std::shared_ptr<const ModelEntry> entry_ptr) const {
  auto slot = std::make_shared<ModelSlot>();
  slot->entry = entry_ptr;
  const ModelEntry& entry = *entry_ptr;
  for (const VersionEntry& version : entry.versions) {
    VersionSlot v;
    v.version = version.version;
    v.state = version.state;
    v.reason = version.reason;
    slot->versions.push_back(std::move(v));
  }
  if (!entry.config_ok) return slot;  // the caller logs it (a reload may keep the previous load serving)
  if (entry.config.platform() == kPlatformEnsemble) {
    // Members are found through Find at every request, so a reloaded member is picked up.
    ServableResolver resolver = [this](const std::string& model, int64_t version) { return Find(model, version); };
    StatusOr<std::unique_ptr<EnsembleServable>> ensemble =
        EnsembleServable::Create(entry.config, entry.labels, std::move(resolver), servable_options_.decode_limits);
    VersionSlot v;
    v.version = 1;
    if (!ensemble.ok()) {
      v.reason = entry.config_path + ": " + ensemble.status().message();
      spdlog::error("model {}: UNAVAILABLE: {}", entry.name, v.reason);
    } else {
      v.state = ModelState::kReady;
      v.servable = WithResponseCache(std::shared_ptr<Servable>(*std::move(ensemble)), entry.config, response_cache_);
      LogEnsembleReady(entry);
    }
    slot->versions.assign(1, std::move(v));
    return slot;
  }
  for (size_t i = 0; i < slot->versions.size(); ++i) {
    VersionSlot& served = slot->versions[i];
    const VersionEntry& version = entry.versions[i];
    if (served.state != ModelState::kReady) {
      spdlog::error("model {} version {}: UNAVAILABLE: {}", entry.name, version.version, served.reason);
      continue;
    }
    const int64_t warm_start_us = SteadyNowMicros();
    StatusOr<std::unique_ptr<ModelServable>> servable = ModelServable::Create(entry, version, servable_options_);
    if (!servable.ok()) {
      served.state = ModelState::kUnavailable;
      served.reason = (version.model_path.empty() ? entry.config_path : version.model_path) + ": " +
                      servable.status().message();
      spdlog::error("model {} version {}: UNAVAILABLE: {}", entry.name, version.version, served.reason);
      continue;
    }
    LogModelReady(entry, version, **servable, warm_start_us, response_cache_->capacity_bytes());
    served.servable = WithResponseCache(std::shared_ptr<Servable>(*std::move(servable)), entry.config, response_cache_);
  }
  return slot;
}

void InferenceServiceImpl::LoadAll(const ModelRepository& repository) {
  std::vector<std::shared_ptr<const ModelEntry>> ensembles;
  for (const ModelEntry& entry : repository.models()) {
    ModelEntry relative = entry;
    MakePathsRelative(root_prefix_, &relative);
    if (!relative.config_ok) spdlog::error("model {}: UNAVAILABLE: {}", relative.name, relative.config_error);
    auto shared = std::make_shared<const ModelEntry>(std::move(relative));
    if (entry.config_ok && entry.config.platform() == kPlatformEnsemble) {
      ensembles.push_back(std::move(shared));
      continue;
    }
    Publish(BuildSlot(std::move(shared)));
  }
  for (std::shared_ptr<const ModelEntry>& entry : ensembles) Publish(BuildSlot(std::move(entry)));
  int ready_versions = 0;
  int unavailable_versions = 0;
  size_t count = 0;
  {
    std::shared_lock lock(mu_);
    count = models_.size();
    for (const auto& [name, model] : models_) {
      for (const VersionSlot& v : model->versions) {
        (v.state == ModelState::kReady ? ready_versions : unavailable_versions)++;
      }
    }
  }
  spdlog::info("model repository {}: {} model(s), {} version(s) ready, {} unavailable", root_, count,
               ready_versions, unavailable_versions);
  ready_.store(true);
}

std::shared_ptr<const ModelSlot> InferenceServiceImpl::FindSlot(const std::string& name) const {
  std::shared_lock lock(mu_);
  const auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

std::shared_ptr<const ModelSlot> InferenceServiceImpl::Unpublish(const std::string& name) {
  std::unique_lock lock(mu_);
  const auto it = models_.find(name);
  if (it == models_.end()) return nullptr;
  std::shared_ptr<const ModelSlot> old = std::move(it->second);
  models_.erase(it);
  response_cache_->Clear();
  return old;
}

std::shared_ptr<const ModelSlot> InferenceServiceImpl::Publish(std::shared_ptr<const ModelSlot> slot) {
  std::unique_lock lock(mu_);
  std::shared_ptr<const ModelSlot>& place = models_[slot->entry->name];
  std::swap(place, slot);
  response_cache_->Clear();  // an ensemble's answers depend on its members' versions: none may outlive a change
  return slot;
}

void InferenceServiceImpl::Retire(std::shared_ptr<const ModelSlot> slot, const std::string& why) const {
  if (slot == nullptr) return;
  const int64_t deadline_us = SteadyNowMicros() + options_.retire_drain_timeout_us;
  const std::vector<std::shared_ptr<Servable>> servables = slot->Servables();
  slot.reset();
  // A request that found a servable just before the swap calls Run on it a moment later: stopping admission
  // now would fail it with UNAVAILABLE. Requests hold their servable until `done`, so once `servables` holds
  // the only references, nothing can reach them any more and nothing is in flight.
  const auto held = [&servables] {
    return std::any_of(servables.begin(), servables.end(),
                       [](const std::shared_ptr<Servable>& s) { return s.use_count() > 1; });
  };
  while (held() && SteadyNowMicros() < deadline_us && !shutting_down_.load()) {
    std::this_thread::sleep_for(kRetirePollInterval);
  }
  for (const std::shared_ptr<Servable>& servable : servables) {
    if (Status status = servable->Shutdown(deadline_us); !status.ok()) {
      spdlog::warn("model {} version {} ({}): {}", servable->info().name, servable->info().version, why,
                   status.ToString());
    }
  }
}

StatusOr<std::shared_ptr<Servable>> InferenceServiceImpl::Find(const std::string& name, int64_t version) const {
  if (name.empty()) return InvalidArgumentError("field model is empty: name a model (see ListModels)");
  const std::shared_ptr<const ModelSlot> slot = FindSlot(name);
  if (slot == nullptr) return NotFoundError("model " + QuotedModelName(name) + " not found");
  if (version < 0) {
    return InvalidArgumentError("field version: " + std::to_string(version) +
                                " must be >= 0 (0: the newest ready version)");
  }
  if (version == 0) {
    const VersionSlot* served = slot->DefaultVersion();
    if (served == nullptr)
      return UnavailableError("model " + QuotedModelName(name) + " is unavailable: " + slot->Reason());
    return served->servable;
  }
  const VersionSlot* served = slot->FindVersion(version);
  if (served == nullptr) {
    std::vector<int64_t> versions;
    for (const VersionSlot& v : slot->versions) {
      if (v.version > 0) versions.push_back(v.version);
    }
    return NotFoundError("version " + std::to_string(version) + " of model " + QuotedModelName(name) +
                         " not found (versions: " + (versions.empty() ? "none" : JoinSizes(versions)) + ")");
  }
  if (served->state != ModelState::kReady) {
    return UnavailableError("version " + std::to_string(version) + " of model " + QuotedModelName(name) +
                            " is unavailable: " + served->reason);
  }
  return served->servable;
}

StatusOr<std::shared_ptr<Servable>> InferenceServiceImpl::FindLayer(const std::string& name, int64_t version,
                                                                   const std::string& layer) {
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<Servable> servable, Find(name, version));
  const std::shared_ptr<const ModelSlot> slot = FindSlot(name);
  const VersionEntry* entry = slot == nullptr ? nullptr : slot->entry->FindVersion(servable->info().version);
  if (entry == nullptr || entry->model == nullptr) {
    return InvalidArgumentError("model " + QuotedModelName(name) + " (platform " + servable->info().platform +
                                ") has no layers of its own: name a layer of an engine model");
  }
  return layer_servables_->Get(*slot->entry, *entry, layer);
}

void InferenceServiceImpl::Infer(InferRequest request, std::shared_ptr<InferOutcome> outcome,
                                 std::function<void(Status)> done) {
  outcome->start_us = SteadyNowMicros();
  outcome->request_id = request.request_id.empty()
                            ? request_id_prefix_ + std::to_string(next_request_.fetch_add(1) + 1)
                            : std::move(request.request_id);
  if (Status admitted = gate_.Enter(); !admitted.ok()) {
    LogRequestError(outcome->request_id, request.model, admitted);
    return done(std::move(admitted));
  }
  error_log_.Flush(outcome->start_us);
  // From here on every answer leaves the gate, before the front end has it: a client that sends its next
  // request as soon as it has an answer finds the room that answer freed.
  done = [this, done = std::move(done)](Status status) {
    gate_.Leave(status);
    done(std::move(status));
  };
  const auto fail = [&](const Status& status) {
    LogRequestError(outcome->request_id, request.model, status);
    gate_.Prepared();
    done(status);
  };
  if (request.deadline_us == 0 && options_.default_timeout_us > 0) {
    request.deadline_us = outcome->start_us + options_.default_timeout_us;
  }
  StatusOr<std::shared_ptr<Servable>> found = request.layer.empty()
                                                  ? Find(request.model, request.version)
                                                  : FindLayer(request.model, request.version, request.layer);
  if (!found.ok()) return fail(found.status());
  outcome->servable = *std::move(found);
  if (request.deadline_us > 0 && outcome->start_us >= request.deadline_us) {
    return fail(DeadlineExceededError("the deadline passed before the request was scheduled"));
  }
  if (request.cancelled && request.cancelled()) return fail(CancelledError("the request was cancelled"));

  auto run = std::make_shared<RunRequest>();
  if (!request.build_items) return fail(InternalError("Infer: the front end gave no build_items"));
  if (Status status = request.build_items(outcome->servable->info(), run.get()); !status.ok()) {
    return fail(status);
  }
  run->deadline_us = request.deadline_us;
  run->cancelled = std::move(request.cancelled);
  run->want_member_results = request.want_member_results;
  run->request_id = outcome->request_id;
  if (outcome->servable->AnswerFromCache(run.get(), &outcome->result)) {
    gate_.Prepared();
    return done(OkStatus());
  }
  // Refused before any decode when its servable cannot take it now.
  const bool decode_worker = NeedsDecodeWorker(*run, options_.max_pixels);
  const AdmissionInput admission{.now_us = SteadyNowMicros(),
                                 .decode_wait_us = decode_worker ? decode_pool_->ExpectedWaitMicros() : 0,
                                 .max_queue_wait_us = options_.max_queue_wait_us};
  if (Status admitted = AdmitRequest(*outcome->servable, *run, admission); !admitted.ok()) return fail(admitted);
  if (!decode_worker) return Launch(outcome, std::move(run), std::move(request.model), std::move(done));
  // Until it is scheduled, the servable's admission counts this request's items as coming (the handle keeps
  // the servable it counts on alive).
  auto incoming = std::make_shared<std::pair<std::shared_ptr<Servable>, std::shared_ptr<void>>>(
      outcome->servable, outcome->servable->ExpectIncoming(static_cast<int64_t>(run->items.size())));
  // The decode runs on a decode worker. Until that worker has handed the request to its servable the gate counts
  // it as being prepared, so a shutdown waits for it (WaitPrepared).
  const std::shared_ptr<std::function<void(Status)>> shared_done =
      std::make_shared<std::function<void(Status)>>(std::move(done));
  Status queued = decode_pool_->Submit([this, outcome, run, model = request.model, shared_done,
                                        incoming = std::move(incoming)]() mutable {
    incoming.reset();
    Status expired;
    if (drain_expired_.load()) {
      expired = DeadlineExceededError("shutting down: the drain timeout ended before this request was decoded");
    } else if (run->deadline_us > 0 && SteadyNowMicros() >= run->deadline_us) {
      expired = DeadlineExceededError("the deadline passed while the request waited for a decode worker");
    } else if (run->cancelled && run->cancelled()) {
      expired = CancelledError("the request was cancelled while it waited for a decode worker");
    }
    if (!expired.ok()) {
      LogRequestError(outcome->request_id, model, expired);
      gate_.Prepared();
      return (*shared_done)(expired);
    }
    Launch(outcome, std::move(run), std::move(model), std::move(*shared_done));
  });
  if (!queued.ok()) {
    done = std::move(*shared_done);  // not taken by the pool
    return fail(queued);
  }
}

void InferenceServiceImpl::Launch(const std::shared_ptr<InferOutcome>& outcome, std::shared_ptr<RunRequest> run,
                                  std::string model, std::function<void(Status)> done) {
  Servable* const servable = outcome->servable.get();
  RunResult* const result = &outcome->result;
  servable->Run(std::move(run), result,
                [this, outcome, model = std::move(model), done = std::move(done)](Status status) {
                  // Decoded after the drain timeout ended: the servable has stopped admitting. The request was
                  // admitted, so it ends as the drain's other late requests do.
                  if (status.code() == StatusCode::kUnavailable && drain_expired_.load()) {
                    status = DeadlineExceededError(
                        "shutting down: the drain timeout ended before this request was decoded");
                  }
                  if (!status.ok()) LogRequestError(outcome->request_id, model, status);
                  error_log_.Flush(SteadyNowMicros());
                  done(std::move(status));
                });
  gate_.Prepared();  // the request is in its servable's hands (queued, running or answered)
}

std::vector<InferenceService::VersionRow> InferenceServiceImpl::Index() const {
  std::vector<VersionRow> rows;
  std::shared_lock lock(mu_);
  for (const auto& [name, slot] : models_) {
    if (slot->versions.empty()) {
      rows.push_back({name, 0, std::string(ModelStateName(ModelState::kUnavailable)), slot->Reason()});
      continue;
    }
    for (const VersionSlot& v : slot->versions) {
      std::string reason = v.reason.empty() ? slot->Reason() : v.reason;
      if (v.state == ModelState::kReady) {
        reason = slot->load_error.empty() ? std::string()
                                          : "serving the previous load; the last load failed: " + slot->load_error;
      }
      rows.push_back({name, v.version, std::string(ModelStateName(v.state)), std::move(reason)});
    }
  }
  return rows;
}

StatusOr<std::vector<ServableStats>> InferenceServiceImpl::Statistics(const std::string& name,
                                                                      int64_t version) const {
  std::vector<std::shared_ptr<const ModelSlot>> slots;
  {
    std::shared_lock lock(mu_);
    if (name.empty()) {
      for (const auto& [n, slot] : models_) slots.push_back(slot);
    } else {
      const auto it = models_.find(name);
      if (it == models_.end()) return NotFoundError("model " + QuotedModelName(name) + " not found");
      slots.push_back(it->second);
    }
  }
  if (version < 0) return InvalidArgumentError("version " + std::to_string(version) + " must be >= 0");
  std::vector<ServableStats> out;
  for (const std::shared_ptr<const ModelSlot>& slot : slots) {
    if (version > 0 && !name.empty() && slot->FindVersion(version) == nullptr) {
      return NotFoundError("version " + std::to_string(version) + " of model " + QuotedModelName(name) +
                           " not found");
    }
    for (const VersionSlot& v : slot->versions) {
      if (v.servable == nullptr || (version > 0 && v.version != version)) continue;
      out.push_back(v.servable->Stats());
    }
  }
  return out;
}

Status InferenceServiceImpl::LoadModel(const std::string& name) {
  CNN_RETURN_IF_ERROR(CheckModelControlAllowed(options_.model_control_mode, "load"));
  return LoadModelNow(name);
}

Status InferenceServiceImpl::UnloadModel(const std::string& name) {
  CNN_RETURN_IF_ERROR(CheckModelControlAllowed(options_.model_control_mode, "unload"));
  return UnloadModelNow(name);
}

Status InferenceServiceImpl::LoadModelNow(const std::string& name) {
  CNN_RETURN_IF_ERROR(CheckModelName(name));
  std::lock_guard<std::mutex> load_lock(load_mu_);
  if (shutting_down_.load()) return UnavailableError("shutting down: not loading models");
  StatusOr<ModelEntry> loaded = LoadModelFolder(root_, name, repository_options_);
  if (!loaded.ok()) {
    if (loaded.status().code() == StatusCode::kNotFound) {
      return NotFoundError("model " + QuotedModelName(name) + " is not in the model repository");
    }
    return InvalidArgumentError("model " + QuotedModelName(name) + " cannot be loaded");
  }
  ModelEntry entry = *std::move(loaded);
  MakePathsRelative(root_prefix_, &entry);
  const bool config_ok = entry.config_ok;
  const std::string config_error = entry.config_error;
  std::shared_ptr<ModelSlot> slot = BuildSlot(std::make_shared<const ModelEntry>(std::move(entry)));
  if (!config_ok) {
    PublishFailedLoad(name, std::move(slot), config_error);
    return InvalidArgumentError(config_error);
  }
  if (slot->DefaultVersion() == nullptr) {
    for (const std::shared_ptr<Servable>& s : slot->Servables()) (void)s->Shutdown(SteadyNowMicros());
    const std::string reason = slot->Reason();
    PublishFailedLoad(name, std::move(slot), reason);
    return UnavailableError("model " + QuotedModelName(name) + " could not be loaded: " + reason);
  }
  std::shared_ptr<const ModelSlot> old = Publish(std::move(slot));
  spdlog::info("model {}: loaded", name);
  Retire(std::move(old), "replaced by a new load");
  return OkStatus();
}

void InferenceServiceImpl::PublishFailedLoad(const std::string& name, std::shared_ptr<ModelSlot> failed,
                                             const std::string& why) {
  const std::shared_ptr<const ModelSlot> current = FindSlot(name);
  if (current != nullptr && current->DefaultVersion() != nullptr) {
    auto kept = std::make_shared<ModelSlot>(*current);  // the same servables: nothing to retire
    kept->load_error = why;
    Publish(std::move(kept));
    spdlog::error("model {}: the load failed, the previous load keeps serving: {}", name, why);
    return;
  }
  Publish(std::move(failed));
  spdlog::error("model {}: UNAVAILABLE: {}", name, why);
}

Status InferenceServiceImpl::UnloadModelNow(const std::string& name) {
  CNN_RETURN_IF_ERROR(CheckModelName(name));
  std::lock_guard<std::mutex> load_lock(load_mu_);
  std::shared_ptr<const ModelSlot> current = FindSlot(name);
  if (current == nullptr) {
    return NotFoundError("model " + QuotedModelName(name) + " is not in the model repository");
  }
  const bool unloaded = current->DefaultVersion() == nullptr && current->unavailable_reason == kUnloaded;
  current.reset();  // Retire waits for every other holder of the old servables
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::path(root_) / name, ec)) {
    spdlog::info("model {}: unloaded; its folder is gone, so it leaves the index", name);
    Retire(Unpublish(name), "its folder was removed");
    return OkStatus();
  }
  if (unloaded) return OkStatus();
  auto slot = std::make_shared<ModelSlot>();
  {
    const std::shared_ptr<const ModelSlot> serving = FindSlot(name);  // load_mu_ held: still the one above
    slot->entry = serving->entry;
    for (const VersionSlot& v : serving->versions)
      slot->versions.push_back({v.version, ModelState::kUnavailable, kUnloaded, nullptr});
  }
  slot->unavailable_reason = kUnloaded;
  std::shared_ptr<const ModelSlot> old = Publish(std::move(slot));
  spdlog::info("model {}: unloaded", name);
  Retire(std::move(old), kUnloaded);
  return OkStatus();
}

Status InferenceServiceImpl::RemoveModel(const std::string& name) {
  std::lock_guard<std::mutex> load_lock(load_mu_);
  std::shared_ptr<const ModelSlot> old = Unpublish(name);
  if (old == nullptr) return OkStatus();
  spdlog::info("model {}: its folder was removed: draining and unloading it", name);
  Retire(std::move(old), "its folder was removed");
  return OkStatus();
}

InferenceService::ModelSummary InferenceServiceImpl::Summarize(const ModelSlot& model) const {
  const ModelEntry& entry = *model.entry;
  ModelSummary summary;
  summary.name = entry.name;
  for (const VersionSlot& v : model.versions) {
    summary.versions.push_back({entry.name, v.version, std::string(ModelStateName(v.state)), v.reason});
  }
  if (model.versions.empty()) {
    const bool ready = model.DefaultVersion() != nullptr;
    summary.versions.push_back({entry.name, 0,
                                std::string(ModelStateName(ready ? ModelState::kReady : ModelState::kUnavailable)),
                                model.Reason()});
  }
  summary.input_dims = entry.InputDims();
  summary.num_classes = entry.NumClasses();
  if (const VersionSlot* ready = model.DefaultVersion(); ready != nullptr) {
    summary.input_dims = ready->servable->info().item_input_dims;
    summary.num_classes = ready->servable->info().num_classes;
  }
  if (entry.config_ok) summary.platform = entry.config.platform();
  return summary;
}

std::vector<InferenceService::ModelSummary> InferenceServiceImpl::Models() const {
  std::vector<ModelSummary> models;
  std::shared_lock lock(mu_);
  for (const auto& [name, model] : models_) models.push_back(Summarize(*model));
  return models;
}

StatusOr<InferenceService::ModelDescription> InferenceServiceImpl::Describe(const std::string& name,
                                                                            int64_t version) const {
  if (name.empty()) return InvalidArgumentError("field model is empty: name a model (see ListModels)");
  if (version < 0) {
    return InvalidArgumentError("field version: " + std::to_string(version) +
                                " must be >= 0 (0: the newest ready version)");
  }
  const std::shared_ptr<const ModelSlot> slot = FindSlot(name);
  if (slot == nullptr) return NotFoundError("model " + QuotedModelName(name) + " not found");
  const ModelEntry& entry = *slot->entry;
  const VersionEntry* described = nullptr;
  if (version == 0) {
    const VersionSlot* ready = slot->DefaultVersion();
    if (ready != nullptr) described = entry.FindVersion(ready->version);
    for (auto v = entry.versions.rbegin(); described == nullptr && v != entry.versions.rend(); ++v) {
      if (v->graph != nullptr) described = &*v;
    }
  } else {
    described = entry.FindVersion(version);
    if (described == nullptr) {
      return NotFoundError("version " + std::to_string(version) + " of model " + QuotedModelName(name) +
                           " not found");
    }
  }
  ModelDescription description;
  description.summary = Summarize(*slot);
  if (entry.config_ok) description.config = entry.config;
  if (described != nullptr && described->graph != nullptr) {
    description.stats = ComputeGraphStats(*described->graph);
    description.layer_table = FormatStatsTable(*description.stats);
  }
  if (const VersionSlot* ready = slot->DefaultVersion(); ready != nullptr) {
    description.labels = ready->servable->info().labels;
  }
  return description;
}

bool InferenceServiceImpl::Ready() const {
  if (!ready_.load() || shutting_down_.load()) return false;
  if (!options_.strict_readiness) return true;
  std::shared_lock lock(mu_);
  return std::all_of(models_.begin(), models_.end(),
                     [](const auto& named) { return named.second->DefaultVersion() != nullptr; });
}

std::vector<std::string> InferenceServiceImpl::ReadyModels() const {
  std::vector<std::string> names;
  if (!ready_.load() || shutting_down_.load()) return names;
  std::shared_lock lock(mu_);
  for (const auto& [name, model] : models_) {
    if (model->DefaultVersion() != nullptr) names.push_back(name);
  }
  return names;
}

Status InferenceServiceImpl::Shutdown(int64_t drain_deadline_us) {
  std::lock_guard<std::mutex> lock(shutdown_mu_);
  if (shutdown_done_) return shutdown_result_;
  shutting_down_.store(true);
  const int64_t in_flight = gate_.Close();
  // After the load in progress (it sees shutting_down_ and publishes nothing more): then the map is final.
  if (poller_ != nullptr) poller_->Stop();
  spdlog::info("shutdown: {} requests in flight, draining", in_flight);
  // Requests still being decoded or validated reach their servable before it stops admitting; then the
  // servables run what they were given without waiting for fuller batches.
  if (!gate_.WaitPrepared(drain_deadline_us)) {
    drain_expired_.store(true);
    spdlog::warn("drain: the drain timeout ended with requests still being prepared");
  }
  spdlog::info("inference: draining every model's queue");
  // Every servable drains at once; each Shutdown blocks until its queue is empty or the deadline passes.
  // Ensembles first (they stop admitting), then the models that do the work.
  std::vector<std::shared_ptr<Servable>> servables;
  {
    std::shared_lock map_lock(mu_);
    for (const auto& [name, model] : models_) {
      for (std::shared_ptr<Servable>& s : model->Servables()) servables.push_back(std::move(s));
    }
  }
  std::stable_partition(servables.begin(), servables.end(), [](const std::shared_ptr<Servable>& s) {
    return s->info().platform == kPlatformEnsemble;
  });
  std::vector<Status> results(servables.size());
  std::vector<std::thread> threads;
  threads.reserve(servables.size());
  for (size_t i = 0; i < servables.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = servables[i]->Shutdown(drain_deadline_us); });
  }
  for (std::thread& t : threads) t.join();
  layer_servables_->Shutdown(drain_deadline_us);
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) {
      const std::string name =
          servables[i]->info().name + " version " + std::to_string(servables[i]->info().version);
      spdlog::warn("model {}: {}", name, results[i].ToString());
      if (shutdown_result_.ok()) shutdown_result_ = results[i].WithContext("model " + name);
    }
  }
  // Requests still on a decode worker or waiting for one are answered now (the servables have stopped: queued
  // ones end DEADLINE_EXCEEDED without decoding, a decode in progress finishes and is refused the same way).
  decode_pool_->WaitIdle();
  (void)gate_.WaitIdle(drain_deadline_us);  // the last answers of ensembles, whose members have stopped
  error_log_.Flush(SteadyNowMicros(), /*force=*/true);
  spdlog::info("shutdown: {}", gate_.Report().ToString());
  shutdown_done_ = true;
  return shutdown_result_;
}

Status InferenceServiceImpl::StartPoller(RepositorySnapshot initial) {
  RepositoryPollerOptions poller_options;
  poller_options.root = root_;
  poller_options.poll_interval_ms = options_.repository_poll_interval_ms;
  RepositoryPoller::Callbacks callbacks;
  callbacks.load = [this](const std::string& name) { return LoadModelNow(name); };
  callbacks.remove = [this](const std::string& name) { return RemoveModel(name); };
  CNN_ASSIGN_OR_RETURN(poller_,
                       RepositoryPoller::Create(poller_options, std::move(initial), std::move(callbacks)));
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<InferenceService>> InferenceService::Create(const InferenceServiceOptions& options) {
  if (options.total_threads < 0) {
    return InvalidArgumentError("total_threads " + std::to_string(options.total_threads) + " must be >= 0");
  }
  for (const auto& [field, value] :
       {std::pair{"max_images_per_request", options.max_images_per_request},
        std::pair{"max_pixels", options.max_pixels}, std::pair{"max_image_bytes", options.max_image_bytes},
        std::pair{"max_decoded_image_bytes", options.max_decoded_image_bytes},
        std::pair{"max_decode_memory_bytes", options.max_decode_memory_bytes},
        std::pair{"default_max_queue_size", options.default_max_queue_size},
        std::pair{"max_decode_queue", options.max_decode_queue}}) {
    if (value < 1) return InvalidArgumentError(std::string(field) + " " + std::to_string(value) + " must be >= 1");
  }
  if (options.max_queue_wait_us < 0) {
    return InvalidArgumentError("max_queue_wait_us " + std::to_string(options.max_queue_wait_us) + " must be >= 0");
  }
  if (options.repository_poll_interval_ms < 1) {
    return InvalidArgumentError("repository_poll_interval_ms " +
                                std::to_string(options.repository_poll_interval_ms) + " must be >= 1");
  }
  // Poll mode: the scan the poller compares its first scan with, taken before loading (a change made while the
  // models load is seen by the first scan).
  RepositorySnapshot initial;
  if (options.model_control_mode == ModelControlMode::kPoll) {
    StatusOr<RepositorySnapshot> scanned = ScanRepository(options.model_repository);
    if (scanned.ok()) initial = *std::move(scanned);
  }
  ModelRepositoryOptions repository_options;
  repository_options.total_threads = options.total_threads;
  repository_options.default_max_queue_size = options.default_max_queue_size;
  CNN_ASSIGN_OR_RETURN(std::unique_ptr<ModelRepository> repository,
                       ModelRepository::Load(options.model_repository, repository_options));
  auto service = std::make_unique<InferenceServiceImpl>(options, options.model_repository, repository_options);
  service->LoadAll(*repository);
  if (options.model_control_mode == ModelControlMode::kPoll) {
    CNN_RETURN_IF_ERROR(service->StartPoller(std::move(initial)));
  }
  return std::unique_ptr<InferenceService>(std::move(service));
}

}  // namespace cnnserve
