// KServeService: the KServe v2 / Open Inference Protocol service inference.GRPCInferenceService
// (proto/inference/grpc_service.proto) on top of an InferenceService, served on the same port as the native API
// so that Triton's and KServe's clients (tritonclient, perf_analyzer, their own stubs) work unchanged.
//
// RPCs:
//   ServerLive (true while the process serves gRPC), ServerReady (InferenceService::Ready()), ModelReady (the
//   version resolves to a ready servable; unknown or unavailable models are simply not ready), ServerMetadata
//   (name "cnnserve", version, the implemented extensions: classification, model_configuration,
//   model_repository, statistics), ModelMetadata and ModelConfig (server/kserve/kserve_metadata.h), ModelInfer and
//   ModelStreamInfer (server/kserve/kserve_tensors.h: FP32 / UINT8 / BYTES inputs, FP32 or classification outputs),
//   ModelStatistics (InferenceService::Statistics), RepositoryIndex (InferenceService::Index) and
//   RepositoryModelLoad / RepositoryModelUnload (InferenceService::LoadModel / UnloadModel).
// Every call is authorized first (CallAuthorizer, grpc_auth.h; a stream once, at its start; ServerLive and
// ServerReady are open). Model versions travel as strings: "" is the newest ready version, "3" is version 3;
// anything else is INVALID_ARGUMENT. Errors carry DESIGN.md's codes through ToGrpcStatus (grpc_status.h).
//
// No gRPC thread blocks: ModelInfer validates the request, hands the images to Servable::Run and returns; the
// call is finished from Run's `done`, on whichever thread calls it. ModelStreamInfer starts each request as soon
// as it is read (at most `max_in_flight_per_stream` read and unanswered per stream) and writes each response as
// soon as it is ready, so responses may come out of order; each echoes its request's id. A failed request is
// answered with ModelStreamInferResponse.error_message (and the id) and the stream goes on. Repository loads and
// unloads, which compile and warm models, run on a worker thread of this service, one at a time.
//
// Thread-safety: the service is shared by all of gRPC's threads. Ownership: it does not own the InferenceService,
// which must outlive the grpc::Server this service is registered with; the service itself must outlive that
// server's Shutdown/Wait (its destructor joins the repository worker).
#ifndef CNNSERVE_SERVER_TRANSPORT_KSERVE_SERVICE_H_
#define CNNSERVE_SERVER_TRANSPORT_KSERVE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "inference/grpc_service.grpc.pb.h"
#include "server/auth/authorizer.h"
#include "server/service/inference_service.h"
#include "server/transport/grpc_auth.h"

namespace cnnserve {

// The name under which the KServe service's health is reported.
inline constexpr char kKServeServiceName[] = "inference.GRPCInferenceService";

struct KServeServiceOptions {
  // Requests of one ModelStreamInfer that have been read and not yet answered (>= 1).
  int max_in_flight_per_stream = 16;
};

// The generated service with every method taking ByteBuffers: each parses its request bytes itself, so bytes
// that do not parse as the method's request get INVALID_ARGUMENT with a message, not gRPC's bare UNIMPLEMENTED
// (server/transport/raw_message.h). (GRPCInferenceService::CallbackService, every method raw.)
namespace kserve_base {
using S = inference::GRPCInferenceService;
using KServeServiceBase = S::WithRawCallbackMethod_ServerLive<S::WithRawCallbackMethod_ServerReady<
    S::WithRawCallbackMethod_ModelReady<S::WithRawCallbackMethod_ServerMetadata<S::WithRawCallbackMethod_ModelMetadata<
        S::WithRawCallbackMethod_ModelInfer<S::WithRawCallbackMethod_ModelStreamInfer<
            S::WithRawCallbackMethod_ModelConfig<S::WithRawCallbackMethod_ModelStatistics<
                S::WithRawCallbackMethod_RepositoryIndex<S::WithRawCallbackMethod_RepositoryModelLoad<
                    S::WithRawCallbackMethod_RepositoryModelUnload<S::Service>>>>>>>>>>>>;
}  // namespace kserve_base
using kserve_base::KServeServiceBase;

class KServeService final : public KServeServiceBase {
 public:
  // `inference` is not owned and must not be null. `authorizer` (shared; null: every call allowed) is asked
  // before each call does anything (grpc_auth.h).
  KServeService(InferenceService* inference, const KServeServiceOptions& options,
                std::shared_ptr<const auth::Authorizer> authorizer = nullptr);
  ~KServeService() override;

  KServeService(const KServeService&) = delete;
  KServeService& operator=(const KServeService&) = delete;

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;

  // One inference, shared by ModelInfer and ModelStreamInfer: validates `request`, runs it and fills `response`
  // (id echoed). Asynchronous; `done` runs exactly once, on the calling thread (validation errors) or on a
  // worker. `request` and `response` must stay alive until then. `deadline_us`: steady clock, 0 for none.
  void Infer(const inference::ModelInferRequest& request, inference::ModelInferResponse* response,
             int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done);

 private:
  class RepositoryWorker;

  // A method answered on the calling thread: the authorizer's refusal, or the request parsed from `request`,
  // `answer` run on it and its response serialized into `response`.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* AnswerNow(grpc::CallbackServerContext* context, std::string_view method,
                                      const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
                                      Status (KServeService::*answer)(const Request&, Response*) const);
  // RepositoryModelLoad/Unload: the authorizer's refusal, or the request parsed, its model_name and `check`
  // checked, and `change(model_name)` run on the repository worker (one at a time, off gRPC's threads), logged.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* ChangeRepository(grpc::CallbackServerContext* context, std::string_view method,
                                             const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
                                             std::function<Status(const Request&)> check,
                                             std::function<Status(const std::string&)> change,
                                             std::string_view done_verb);
  // The typed bodies of the methods answered at once.
  Status AnswerServerLive(const inference::ServerLiveRequest& request, inference::ServerLiveResponse* response) const;
  Status AnswerServerReady(const inference::ServerReadyRequest& request, inference::ServerReadyResponse* response) const;
  Status AnswerModelReady(const inference::ModelReadyRequest& request, inference::ModelReadyResponse* response) const;
  Status AnswerServerMetadata(const inference::ServerMetadataRequest& request, inference::ServerMetadataResponse* response) const;
  Status AnswerModelMetadata(const inference::ModelMetadataRequest& request, inference::ModelMetadataResponse* response) const;
  Status AnswerModelConfig(const inference::ModelConfigRequest& request, inference::ModelConfigResponse* response) const;
  Status AnswerModelStatistics(const inference::ModelStatisticsRequest& request, inference::ModelStatisticsResponse* response) const;
  Status AnswerRepositoryIndex(const inference::RepositoryIndexRequest& request, inference::RepositoryIndexResponse* response) const;

  InferenceService* const inference_;
  const KServeServiceOptions options_;
  const CallAuthorizer auth_;
  std::unique_ptr<RepositoryWorker> repository_worker_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_TRANSPORT_KSERVE_SERVICE_H_
