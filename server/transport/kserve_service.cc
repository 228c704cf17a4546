#include "server/transport/kserve_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "server/inference/model_control.h"
#include "server/transport/classifier_service.h"
#include "server/transport/grpc_status.h"
#include "server/kserve/kserve_metadata.h"
#include "server/kserve/kserve_tensors.h"

#ifndef CNNSERVE_VERSION
#define CNNSERVE_VERSION "0.0.0"
#endif

namespace cnnserve {
namespace {

constexpr char kServerName[] = "cnnserve";

// The servable for a (name, wire version) pair; INVALID_ARGUMENT for an empty name or a bad version string.
StatusOr<std::shared_ptr<Servable>> FindServable(const InferenceService& inference, const std::string& name,
                                                 const std::string& version, const char* name_field,
                                                 const char* version_field) {
  if (name.empty()) return InvalidArgumentError(std::string(name_field) + " is empty");
  const StatusOr<int64_t> number = ParseModelVersion(version, version_field);
  if (!number.ok()) return number.status();
  return inference.Find(name, *number);
}

// The ready versions of `name`, ascending.
std::vector<int64_t> ReadyVersions(const InferenceService& inference, const std::string& name) {
  std::vector<int64_t> versions;
  for (const InferenceService::VersionRow& row : inference.Index()) {
    if (row.name == name && row.state == "READY" && row.version > 0) versions.push_back(row.version);
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

void LogFailure(const char* method, const grpc::CallbackServerContext* context, const std::string& id,
                const Status& status) {
  if (status.ok()) return;
  spdlog::debug("{} from {} (id '{}'): {}", method, context->peer(), id, status.ToString());
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, const Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Everything one inference needs until Run's `done`: the servable (kept alive across unloads), the parsed input
// (its items point into the request and into its storage), the outputs to return and the result.
struct InferCall {
  std::shared_ptr<Servable> servable;
  ParsedInferInput input;
  std::vector<RequestedOutput> outputs;
  RunResult result;
};

// The reactor of one ModelStreamInfer call. Requests start as soon as they are read; each response is written as
// soon as it is ready (in completion order). All decisions are taken under `mu_`; the gRPC operations they lead
// to (StartRead, StartWrite, Finish) are started after `mu_` is released, because gRPC may run OnReadDone /
// OnWriteDone inline on the thread that starts an operation. Lifetime: gRPC calls OnDone once the call is over and
// no operation is outstanding; the reactor is finished only when no inference of it is outstanding either, so it
// is deleted only when nothing can reach it any more.
class StreamInferReactor final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse> {
 public:
  StreamInferReactor(grpc::CallbackServerContext* context, KServeService* service, int max_in_flight)
      : context_(context), service_(service), max_in_flight_(std::max(1, max_in_flight)) {
    reading_ = true;
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed, or the call is over
      Actions actions;
      {
        std::lock_guard<std::mutex> lock(mu_);
        reading_ = false;
        reads_done_ = true;
        actions = NextActionsLocked();
      }
      Run(actions);
      return;
    }
    auto slot = std::make_shared<Slot>();
    slot->request.Swap(&incoming_);
    bool start = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = false;
      if (!failed_) {
        ++in_flight_;
        start = true;
      }
    }
    if (start) {
      service_->Infer(
          slot->request, slot->response.mutable_infer_response(), DeadlineToSteadyMicros(context_->deadline()),
          [context = context_] { return context->IsCancelled(); },
          [this, slot](Status status) { OnInferred(slot, std::move(status)); });
    }
    Actions actions;
    {
      std::lock_guard<std::mutex> lock(mu_);
      actions = NextActionsLocked();
    }
    Run(actions);
  }

  void OnWriteDone(bool ok) override {
    Actions actions;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (ok) {
        ready_.pop_front();
      } else {  // the client went away; finish once the outstanding inferences return
        failed_ = true;
      }
      actions = NextActionsLocked();
    }
    Run(actions);
  }

  void OnDone() override { delete this; }

 private:
  struct Slot {
    inference::ModelInferRequest request;
    inference::ModelStreamInferResponse response;
  };

  // What to do after the lock is released; `finish` comes last because the reactor may be gone after it.
  struct Actions {
    const inference::ModelStreamInferResponse* write = nullptr;
    bool read = false;
    bool finish = false;
    grpc::Status finish_status;
  };

  void OnInferred(const std::shared_ptr<Slot>& slot, Status status) {
    if (!status.ok()) {
      LogFailure("ModelStreamInfer", context_, slot->request.id(), status);
      // The error travels in the stream; the response still says which request it answers.
      inference::ModelInferResponse* response = slot->response.mutable_infer_response();
      response->Clear();
      response->set_model_name(slot->request.model_name());
      response->set_model_version(slot->request.model_version());
      response->set_id(slot->request.id());
      slot->response.set_error_message(std::string(StatusCodeName(status.code())) + ": " + status.message());
    }
    Actions actions;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --in_flight_;
      if (!failed_) ready_.push_back(slot);
      actions = NextActionsLocked();
    }
    Run(actions);
  }

  Actions NextActionsLocked() {
    Actions actions;
    if (finished_) return actions;
    if (!failed_ && !writing_ && !ready_.empty()) {
      writing_ = true;
      actions.write = &ready_.front()->response;
    }
    const int unanswered = in_flight_ + static_cast<int>(ready_.size());
    if (!failed_ && !reads_done_ && !reading_ && unanswered < max_in_flight_) {
      reading_ = true;
      actions.read = true;
    }
    // Finish once nothing of ours is outstanding. After a failure an outstanding read is allowed: the client may
    // keep its side open, and Finish makes that read complete.
    const bool answered_all = failed_ || (reads_done_ && ready_.empty());
    if (answered_all && in_flight_ == 0 && !writing_ && (failed_ || !reading_)) {
      finished_ = true;
      actions.finish = true;
      actions.finish_status =
          failed_ ? grpc::Status(grpc::StatusCode::CANCELLED, "ModelStreamInfer: writing a response failed")
                  : grpc::Status::OK;
    }
    return actions;
  }

  void Run(const Actions& actions) {
    if (actions.write != nullptr) StartWrite(actions.write);
    if (actions.read) StartRead(&incoming_);
    if (actions.finish) Finish(actions.finish_status);  // last: `this` may be deleted from here on
  }

  grpc::CallbackServerContext* const context_;
  KServeService* const service_;
  const int max_in_flight_;

  inference::ModelInferRequest incoming_;  // the target of the outstanding read

  std::mutex mu_;
  std::deque<std::shared_ptr<Slot>> ready_;  // answered and not yet written, in completion order
  int in_flight_ = 0;                        // Infer calls whose `done` is pending
  bool reading_ = false;
  bool reads_done_ = false;
  bool writing_ = false;  // a write of ready_.front() is outstanding
  bool failed_ = false;   // a write failed: answer nothing more
  bool finished_ = false;
};

}  // namespace

// Runs repository loads and unloads (which compile and warm models: seconds) one at a time off gRPC's threads.
// The destructor runs what is queued and joins.
class KServeService::RepositoryWorker {
 public:
  RepositoryWorker() : thread_([this] { Loop(); }) {}
  ~RepositoryWorker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void Post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_all();
  }

 private:
  void Loop() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping and nothing left
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

KServeService::KServeService(InferenceService* inference, const KServeServiceOptions& options,
                             std::shared_ptr<const auth::Authorizer> authorizer)
    : inference_(inference),
      options_(options),
      auth_(std::move(authorizer)),
      repository_worker_(std::make_unique<RepositoryWorker>()) {}

KServeService::~KServeService() = default;

void KServeService::Infer(const inference::ModelInferRequest& request, inference::ModelInferResponse* response,
                          int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done) {
  StatusOr<std::shared_ptr<Servable>> servable =
      FindServable(*inference_, request.model_name(), request.model_version(), "model_name", "model_version");
  if (!servable.ok()) return done(servable.status());
  auto call = std::make_shared<InferCall>();
  call->servable = std::move(*servable);
  const ServableInfo& info = call->servable->info();
  StatusOr<std::vector<RequestedOutput>> outputs = ParseRequestedOutputs(request, info);
  if (!outputs.ok()) return done(outputs.status());
  call->outputs = std::move(*outputs);
  KServeInputLimits limits;
  limits.max_items = inference_->options().max_images_per_request;
  limits.max_pixels = inference_->options().max_pixels;
  StatusOr<ParsedInferInput> input = ParseInferInput(request, info, limits);
  if (!input.ok()) return done(input.status());
  call->input = std::move(*input);

  auto run = std::make_shared<RunRequest>();
  run->items = call->input.items;
  run->deadline_us = deadline_us;
  run->cancelled = std::move(cancelled);
  run->request_id = request.id();
  run->item_name = [name = call->input.name](int64_t item) {
    return "input '" + name + "'[" + std::to_string(item) + "]";
  };
  Servable* const target = call->servable.get();
  target->Run(std::move(run), &call->result,
              [call, response, id = request.id(), done = std::move(done)](Status status) {
                if (status.ok()) {
                  FillInferOutputs(call->result, call->servable->info(), call->outputs, response);
                  response->set_id(id);
                }
                done(std::move(status));
              });
}

grpc::ServerUnaryReactor* KServeService::ServerLive(grpc::CallbackServerContext* context,
                                                    const inference::ServerLiveRequest* /*request*/,
                                                    inference::ServerLiveResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/ServerLive")) return refused;
  response->set_live(true);
  return FinishNow(context, OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ServerReady(grpc::CallbackServerContext* context,
                                                     const inference::ServerReadyRequest* /*request*/,
                                                     inference::ServerReadyResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/ServerReady")) return refused;
  response->set_ready(inference_->Ready());
  return FinishNow(context, OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelReady(grpc::CallbackServerContext* context,
                                                    const inference::ModelReadyRequest* request,
                                                    inference::ModelReadyResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/ModelReady")) return refused;
  if (request->name().empty()) return FinishNow(context, InvalidArgumentError("name is empty"));
  const StatusOr<int64_t> version = ParseModelVersion(request->version(), "version");
  if (!version.ok()) return FinishNow(context, version.status());
  // Unknown, unloaded or failed models are not ready; that is an answer, not an error.
  response->set_ready(inference_->Find(request->name(), *version).ok());
  return FinishNow(context, OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(grpc::CallbackServerContext* context,
                                                        const inference::ServerMetadataRequest* /*request*/,
                                                        inference::ServerMetadataResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/ServerMetadata")) return refused;
  response->set_name(kServerName);
  response->set_version(CNNSERVE_VERSION);
  for (const std::string& extension : KServeExtensions()) response->add_extensions(extension);
  return FinishNow(context, OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(grpc::CallbackServerContext* context,
                                                       const inference::ModelMetadataRequest* request,
                                                       inference::ModelMetadataResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/ModelMetadata")) return refused;
  const StatusOr<std::shared_ptr<Servable>> servable =
      FindServable(*inference_, request->name(), request->version(), "name", "version");
  if (!servable.ok()) return FinishNow(context, servable.status());
  FillModelMetadata((*servable)->info(), ReadyVersions(*inference_, request->name()), response);
  return FinishNow(context, OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(grpc::CallbackServerContext* context,
                                                    const inference::ModelInferRequest* request,
                                                    inference::ModelInferResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/ModelInfer")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // `context`, `request` and `response` stay valid until the reactor is finished, i.e. until `done` returns.
  Infer(
      *request, response, DeadlineToSteadyMicros(context->deadline()),
      [context] { return context->IsCancelled(); },
      [reactor, context, request](Status status) {
        LogFailure("ModelInfer", context, request->id(), status);
        reactor->Finish(ToGrpcStatus(status));
      });
  return reactor;
}

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
KServeService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  if (auto* refused = auth_.RefuseStream<inference::ModelInferRequest, inference::ModelStreamInferResponse>(
          context, "/inference.GRPCInferenceService/ModelStreamInfer")) {
    return refused;
  }
  return new StreamInferReactor(context, this, options_.max_in_flight_per_stream);
}

grpc::ServerUnaryReactor* KServeService::ModelConfig(grpc::CallbackServerContext* context,
                                                     const inference::ModelConfigRequest* request,
                                                     inference::ModelConfigResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/ModelConfig")) return refused;
  const StatusOr<std::shared_ptr<Servable>> servable =
      FindServable(*inference_, request->name(), request->version(), "name", "version");
  if (!servable.ok()) return FinishNow(context, servable.status());
  FillModelConfig((*servable)->info(), response->mutable_config());
  return FinishNow(context, OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelStatistics(grpc::CallbackServerContext* context,
                                                         const inference::ModelStatisticsRequest* request,
                                                         inference::ModelStatisticsResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/ModelStatistics"))
    return refused;
  const StatusOr<int64_t> version = ParseModelVersion(request->version(), "version");
  if (!version.ok()) return FinishNow(context, version.status());
  if (request->name().empty() && *version != 0) {
    return FinishNow(context, InvalidArgumentError("version '" + request->version() + "' needs a model name"));
  }
  const StatusOr<std::vector<ServableStats>> stats = inference_->Statistics(request->name(), *version);
  if (!stats.ok()) return FinishNow(context, stats.status());
  for (const ServableStats& s : *stats) FillModelStatistics(s, response->add_model_stats());
  return FinishNow(context, OkStatus());
}

grpc::ServerUnaryReactor* KServeService::RepositoryIndex(grpc::CallbackServerContext* context,
                                                         const inference::RepositoryIndexRequest* request,
                                                         inference::RepositoryIndexResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/RepositoryIndex"))
    return refused;
  for (const InferenceService::VersionRow& row : inference_->Index()) {
    if (request->ready() && row.state != "READY") continue;
    auto* model = response->add_models();
    model->set_name(row.name);
    if (row.version > 0) model->set_version(std::to_string(row.version));
    model->set_state(row.state);
    model->set_reason(row.reason);
  }
  return FinishNow(context, OkStatus());
}

grpc::ServerUnaryReactor* KServeService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse* /*response*/) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/RepositoryModelLoad"))
    return refused;
  if (request->model_name().empty()) return FinishNow(context, InvalidArgumentError("model_name is empty"));
  if (!request->parameters().empty()) {
    return FinishNow(context, InvalidArgumentError("RepositoryModelLoad: parameters (such as '" +
                                                   request->parameters().begin()->first +
                                                   "') are not supported; the model is loaded from its folder"));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  repository_worker_->Post([this, reactor, name = request->model_name()] {
    const Status status = inference_->LoadModel(name);
    if (status.ok()) {
      spdlog::info("RepositoryModelLoad: model {} loaded", QuotedModelName(name));
    } else {
      // The name is the client's: quoted, bounded and with control bytes escaped (no forged log lines).
      spdlog::warn("RepositoryModelLoad: model {}: {}", QuotedModelName(name), status.ToString());
    }
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse* /*response*/) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/RepositoryModelUnload"))
    return refused;
  if (request->model_name().empty()) return FinishNow(context, InvalidArgumentError("model_name is empty"));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  repository_worker_->Post([this, reactor, name = request->model_name()] {
    const Status status = inference_->UnloadModel(name);
    if (status.ok()) {
      spdlog::info("RepositoryModelUnload: model {} unloaded", QuotedModelName(name));
    } else {
      // The name is the client's: quoted, bounded and with control bytes escaped (no forged log lines).
      spdlog::warn("RepositoryModelUnload: model {}: {}", QuotedModelName(name), status.ToString());
    }
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

}  // namespace cnnserve
