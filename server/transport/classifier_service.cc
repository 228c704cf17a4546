#include "server/transport/classifier_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>

#include "server/native/native_explain.h"
#include "server/native/native_metadata.h"
#include "server/native/native_request.h"
#include "server/transport/grpc_status.h"
#include "server/transport/raw_message.h"
#include "server/transport/stream_reactor.h"

namespace cnnserve {
namespace {

// Deadlines further away than this are treated as "none" (and keep the arithmetic far from overflow).
constexpr int64_t kMaxDeadlineMicros = int64_t{10} * 365 * 24 * 3600 * 1'000'000;

}  // namespace

int64_t DeadlineToSteadyMicros(std::chrono::system_clock::time_point deadline) {
  using std::chrono::system_clock;
  if (deadline == system_clock::time_point::max()) return 0;
  const system_clock::time_point now = system_clock::now();
  const int64_t steady_now_us = SteadyNowMicros();
  if (deadline <= now) return std::max<int64_t>(1, steady_now_us);
  const int64_t remaining_us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
  if (remaining_us > kMaxDeadlineMicros) return 0;
  return steady_now_us + remaining_us;
}

ClassifierService::ClassifierService(InferenceService* inference, const ClassifierServiceOptions& options,
                                     std::shared_ptr<const auth::Authorizer> authorizer)
    : inference_(inference), options_(options), auth_(std::move(authorizer)) {}

template <typename Request, typename Response, typename Start>
grpc::ServerUnaryReactor* ClassifierService::RunUnary(grpc::CallbackServerContext* context, std::string_view method,
                                                      const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
                                                      Start start) {
  if (auto* refused = auth_.RefuseUnary(context, "/cnnserve.v1.Classifier/" + std::string(method))) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // `context`, `request` and `response` stay valid until the reactor is finished, i.e. until `done` returns.
  auto request_id = std::make_shared<std::string>();
  RunRaw<Request, Response>(
      request, response,
      [this, context, request_id, start](const Request& parsed, Response* answer, std::function<void(Status)> finish) {
        *request_id = parsed.request_id();
        start(*inference_, parsed, answer, DeadlineToSteadyMicros(context->deadline()),
              [context] { return context->IsCancelled(); }, std::move(finish));
      },
      [reactor, context, request_id, method = std::string(method)](Status status) {
        LogCallFailure(method.c_str(), context, *request_id, status);
        reactor->Finish(ToGrpcStatus(status));
      });
  return reactor;
}

grpc::ServerUnaryReactor* ClassifierService::Classify(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return RunUnary<v1::ClassifyRequest, v1::ClassifyResponse>(context, "Classify", *request, response, ClassifyNative);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ClassifierService::ClassifyStream(
    grpc::CallbackServerContext* context) {
  if (auto* refused = auth_.RefuseStream<grpc::ByteBuffer, grpc::ByteBuffer>(
          context, "/cnnserve.v1.Classifier/ClassifyStream")) {
    return refused;
  }
  StreamHandler<v1::ClassifyRequest, v1::ClassifyResponse> handler;
  handler.method = "ClassifyStream";
  handler.order = StreamOrder::kRequestOrder;
  handler.start = [context, inference = inference_](const v1::ClassifyRequest& request,
                                                    v1::ClassifyResponse* response,
                                                    std::function<void(Status)> done) {
    ClassifyNative(
        *inference, request, response, DeadlineToSteadyMicros(context->deadline()),
        [context] { return context->IsCancelled(); }, std::move(done));
  };
  handler.request_id = [](const v1::ClassifyRequest& request) { return request.request_id(); };
  return new StreamReactor<grpc::ByteBuffer, grpc::ByteBuffer>(context, RawStreamHandler(std::move(handler)),
                                                              options_.max_in_flight_per_stream);
}

grpc::ServerUnaryReactor* ClassifierService::ListModels(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/cnnserve.v1.Classifier/ListModels")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(AnswerRaw<v1::ListModelsRequest, v1::ListModelsResponse>(
      *request, response, [this](const v1::ListModelsRequest& /*parsed*/, v1::ListModelsResponse* answer) {
        ListModelsNative(*inference_, answer);
        return OkStatus();
      })));
  return reactor;
}

grpc::ServerUnaryReactor* ClassifierService::DescribeModel(grpc::CallbackServerContext* context,
                                                           const grpc::ByteBuffer* request,
                                                           grpc::ByteBuffer* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/cnnserve.v1.Classifier/DescribeModel")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(AnswerRaw<v1::DescribeModelRequest, v1::DescribeModelResponse>(
      *request, response, [this](const v1::DescribeModelRequest& parsed, v1::DescribeModelResponse* answer) {
        return DescribeModelNative(*inference_, parsed, answer);
      })));
  return reactor;
}

grpc::ServerUnaryReactor* ClassifierService::Explain(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return RunUnary<v1::ExplainRequest, v1::ExplainResponse>(context, "Explain", *request, response, ExplainNative);
}

grpc::ServerUnaryReactor* ClassifierService::Embed(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return RunUnary<v1::EmbedRequest, v1::EmbedResponse>(context, "Embed", *request, response, EmbedNative);
}

}  // namespace cnnserve
