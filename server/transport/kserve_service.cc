#include "server/transport/kserve_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "server/kserve/kserve_infer.h"
#include "server/kserve/kserve_metadata.h"
#include "server/kserve/kserve_tensors.h"
#include "server/transport/classifier_service.h"
#include "server/transport/grpc_status.h"
#include "server/transport/raw_message.h"
#include "server/transport/stream_reactor.h"

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

template <typename Request, typename Response>
grpc::ServerUnaryReactor* KServeService::AnswerNow(grpc::CallbackServerContext* context, std::string_view method,
                                                   const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
                                                   Status (KServeService::*answer)(const Request&, Response*) const) {
  if (auto* refused = auth_.RefuseUnary(context, method)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(AnswerRaw<Request, Response>(
      request, response, [this, answer](const Request& in, Response* out) { return (this->*answer)(in, out); })));
  return reactor;
}

void KServeService::Infer(const inference::ModelInferRequest& request, inference::ModelInferResponse* response,
                          int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done) {
  RunKServeInfer(inference_, request, response, deadline_us, std::move(cancelled), std::move(done));
}

grpc::ServerUnaryReactor* KServeService::ServerLive(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) {
  return AnswerNow(context, "/inference.GRPCInferenceService/ServerLive", *request, response, &KServeService::AnswerServerLive);
}

Status KServeService::AnswerServerLive(const inference::ServerLiveRequest& /*request*/, inference::ServerLiveResponse* response) const {
  response->set_live(true);
  return OkStatus();
}

grpc::ServerUnaryReactor* KServeService::ServerReady(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) {
  return AnswerNow(context, "/inference.GRPCInferenceService/ServerReady", *request, response, &KServeService::AnswerServerReady);
}

Status KServeService::AnswerServerReady(const inference::ServerReadyRequest& /*request*/, inference::ServerReadyResponse* response) const {
  response->set_ready(inference_->Ready());
  return OkStatus();
}

grpc::ServerUnaryReactor* KServeService::ModelReady(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) {
  return AnswerNow(context, "/inference.GRPCInferenceService/ModelReady", *request, response, &KServeService::AnswerModelReady);
}

Status KServeService::AnswerModelReady(const inference::ModelReadyRequest& request, inference::ModelReadyResponse* response) const {
  if (request.name().empty()) return InvalidArgumentError("name is empty");
  const StatusOr<int64_t> version = ParseModelVersion(request.version(), "version");
  if (!version.ok()) return version.status();
  // Unknown, unloaded or failed models are not ready; that is an answer, not an error.
  response->set_ready(inference_->Find(request.name(), *version).ok());
  return OkStatus();
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) {
  return AnswerNow(context, "/inference.GRPCInferenceService/ServerMetadata", *request, response, &KServeService::AnswerServerMetadata);
}

Status KServeService::AnswerServerMetadata(const inference::ServerMetadataRequest& /*request*/, inference::ServerMetadataResponse* response) const {
  response->set_name(kServerName);
  response->set_version(CNNSERVE_VERSION);
  for (const std::string& extension : KServeExtensions()) response->add_extensions(extension);
  return OkStatus();
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) {
  return AnswerNow(context, "/inference.GRPCInferenceService/ModelMetadata", *request, response, &KServeService::AnswerModelMetadata);
}

Status KServeService::AnswerModelMetadata(const inference::ModelMetadataRequest& request, inference::ModelMetadataResponse* response) const {
  const StatusOr<std::shared_ptr<Servable>> servable =
      FindServable(*inference_, request.name(), request.version(), "name", "version");
  if (!servable.ok()) return servable.status();
  FillModelMetadata((*servable)->info(), ReadyVersions(*inference_, request.name()), response);
  return OkStatus();
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/inference.GRPCInferenceService/ModelInfer")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // `context`, `request` and `response` stay valid until the reactor is finished, i.e. until `done` returns.
  auto request_id = std::make_shared<std::string>();
  RunRaw<inference::ModelInferRequest, inference::ModelInferResponse>(
      *request, response,
      [this, context, request_id](const inference::ModelInferRequest& parsed, inference::ModelInferResponse* answer,
                                  std::function<void(Status)> finish) {
        *request_id = parsed.id();
        Infer(
            parsed, answer, DeadlineToSteadyMicros(context->deadline()),
            [context] { return context->IsCancelled(); }, std::move(finish));
      },
      [reactor, context, request_id](Status status) {
        LogCallFailure("ModelInfer", context, *request_id, status);
        reactor->Finish(ToGrpcStatus(status));
      });
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* KServeService::ModelStreamInfer(
    grpc::CallbackServerContext* context) {
  if (auto* refused = auth_.RefuseStream<grpc::ByteBuffer, grpc::ByteBuffer>(
          context, "/inference.GRPCInferenceService/ModelStreamInfer")) {
    return refused;
  }
  using Response = inference::ModelStreamInferResponse;
  StreamHandler<inference::ModelInferRequest, Response> handler;
  handler.method = "ModelStreamInfer";
  handler.order = StreamOrder::kCompletionOrder;
  handler.start = [this, context](const inference::ModelInferRequest& request, Response* response,
                                  std::function<void(Status)> done) {
    Infer(
        request, response->mutable_infer_response(), DeadlineToSteadyMicros(context->deadline()),
        [context] { return context->IsCancelled(); }, std::move(done));
  };
  handler.request_id = [](const inference::ModelInferRequest& request) { return request.id(); };
  // The error travels in the stream; the response still says which request it answers.
  handler.error_response = [](const inference::ModelInferRequest& request, const Status& status,
                              Response* response) {
    inference::ModelInferResponse* answer = response->mutable_infer_response();
    answer->Clear();
    answer->set_model_name(request.model_name());
    answer->set_model_version(request.model_version());
    answer->set_id(request.id());
    response->set_error_message(std::string(StatusCodeName(status.code())) + ": " + status.message());
  };
  return new StreamReactor<grpc::ByteBuffer, grpc::ByteBuffer>(context, RawStreamHandler(std::move(handler)),
                                                              options_.max_in_flight_per_stream);
}

grpc::ServerUnaryReactor* KServeService::ModelConfig(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) {
  return AnswerNow(context, "/inference.GRPCInferenceService/ModelConfig", *request, response, &KServeService::AnswerModelConfig);
}

Status KServeService::AnswerModelConfig(const inference::ModelConfigRequest& request, inference::ModelConfigResponse* response) const {
  const StatusOr<std::shared_ptr<Servable>> servable =
      FindServable(*inference_, request.name(), request.version(), "name", "version");
  if (!servable.ok()) return servable.status();
  FillModelConfig((*servable)->info(), response->mutable_config());
  return OkStatus();
}

grpc::ServerUnaryReactor* KServeService::ModelStatistics(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) {
  return AnswerNow(context, "/inference.GRPCInferenceService/ModelStatistics", *request, response, &KServeService::AnswerModelStatistics);
}

Status KServeService::AnswerModelStatistics(const inference::ModelStatisticsRequest& request, inference::ModelStatisticsResponse* response) const {
  const StatusOr<int64_t> version = ParseModelVersion(request.version(), "version");
  if (!version.ok()) return version.status();
  if (request.name().empty() && *version != 0) {
    return InvalidArgumentError("version '" + request.version() + "' needs a model name");
  }
  const StatusOr<std::vector<ServableStats>> stats = inference_->Statistics(request.name(), *version);
  if (!stats.ok()) return stats.status();
  for (const ServableStats& s : *stats) FillModelStatistics(s, response->add_model_stats());
  return OkStatus();
}

grpc::ServerUnaryReactor* KServeService::RepositoryIndex(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) {
  return AnswerNow(context, "/inference.GRPCInferenceService/RepositoryIndex", *request, response, &KServeService::AnswerRepositoryIndex);
}

Status KServeService::AnswerRepositoryIndex(const inference::RepositoryIndexRequest& request, inference::RepositoryIndexResponse* response) const {
  for (const InferenceService::VersionRow& row : inference_->Index()) {
    if (request.ready() && row.state != "READY") continue;
    auto* model = response->add_models();
    model->set_name(row.name);
    if (row.version > 0) model->set_version(std::to_string(row.version));
    model->set_state(row.state);
    model->set_reason(row.reason);
  }
  return OkStatus();
}

grpc::ServerUnaryReactor* KServeService::RepositoryModelLoad(grpc::CallbackServerContext* context,
                                                             const grpc::ByteBuffer* request,
                                                             grpc::ByteBuffer* response) {
  return ChangeRepository<inference::RepositoryModelLoadRequest, inference::RepositoryModelLoadResponse>(
      context, "RepositoryModelLoad", *request, response,
      [](const inference::RepositoryModelLoadRequest& parsed) -> Status {
        if (parsed.parameters().empty()) return OkStatus();
        return InvalidArgumentError("RepositoryModelLoad: parameters (such as '" + parsed.parameters().begin()->first +
                                    "') are not supported; the model is loaded from its folder");
      },
      [inference = inference_](const std::string& name) { return inference->LoadModel(name); }, "loaded");
}

grpc::ServerUnaryReactor* KServeService::RepositoryModelUnload(grpc::CallbackServerContext* context,
                                                               const grpc::ByteBuffer* request,
                                                               grpc::ByteBuffer* response) {
  return ChangeRepository<inference::RepositoryModelUnloadRequest, inference::RepositoryModelUnloadResponse>(
      context, "RepositoryModelUnload", *request, response,
      [](const inference::RepositoryModelUnloadRequest& /*parsed*/) { return OkStatus(); },
      [inference = inference_](const std::string& name) { return inference->UnloadModel(name); }, "unloaded");
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* KServeService::ChangeRepository(grpc::CallbackServerContext* context,
                                                          std::string_view method, const grpc::ByteBuffer& request,
                                                          grpc::ByteBuffer* response,
                                                          std::function<Status(const Request&)> check,
                                                          std::function<Status(const std::string&)> change,
                                                          std::string_view done_verb) {
  const std::string path = "/inference.GRPCInferenceService/" + std::string(method);
  if (auto* refused = auth_.RefuseUnary(context, path)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // `request` and `response` stay valid until the reactor is finished, i.e. until `finish` has run.
  RunRaw<Request, Response>(
      request, response,
      [this, method = std::string(method), check = std::move(check), change = std::move(change),
       done_verb = std::string(done_verb)](const Request& parsed, Response* /*answer*/,
                                           std::function<void(Status)> finish) {
        if (parsed.model_name().empty()) return finish(InvalidArgumentError("model_name is empty"));
        if (Status checked = check(parsed); !checked.ok()) return finish(checked);
        repository_worker_->Post([method, change, done_verb, name = parsed.model_name(), finish = std::move(finish)] {
          const Status status = change(name);
          if (status.ok()) {
            spdlog::info("{}: model {} {}", method, QuotedModelName(name), done_verb);
          } else {
            // The name is the client's: quoted, bounded and with control bytes escaped (no forged log lines).
            spdlog::warn("{}: model {}: {}", method, QuotedModelName(name), status.ToString());
          }
          finish(status);
        });
      },
      [reactor](Status status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

}  // namespace cnnserve
