// ClassifierService: the gRPC face of cnnserve.v1.Classifier on top of an InferenceService.
//
// It uses gRPC's callback API, so no gRPC thread ever blocks on inference:
//   - Classify hands the request to InferenceService::Classify with the call's deadline (converted to the steady
//     clock) and a cancellation check, and returns; the reactor is finished from InferenceService's `done`
//     callback, on whichever thread calls it.
//   - ClassifyStream (bidirectional) starts each request as soon as it is read, so several requests of one stream
//     run at once, and writes the responses in request order even when they complete out of order. At most
//     `max_in_flight_per_stream` requests of a stream are read and not yet answered; the stream stops reading
//     (gRPC flow control then pushes back on the client) until the oldest is written. A stream carries one final
//     status, so the first request (in request order) that fails ends the stream with that request's status after
//     the responses before it have been written; requests after it are not answered.
//   - ListModels and DescribeModel answer inline (they only read the model table).
//   - Explain (occlusion map, feature maps) and Embed (a layer's activations) run through the service layer like
//     Classify and finish their reactor from its `done`.
// Every method is raw (raw_message.h): each parses its request bytes itself, so bytes that do not parse as its
// request message get INVALID_ARGUMENT with a message, not gRPC's bare UNIMPLEMENTED.
// Every call is authorized first (CallAuthorizer, grpc_auth.h; a stream once, at its start).
// Every cnnserve::Status becomes a grpc::Status through ToGrpcStatus (server/transport/grpc_status.h).
//
// Thread-safety: the service object is shared by all of gRPC's threads; it holds no mutable state of its own.
// Ownership: it does not own the InferenceService, which must outlive the grpc::Server this service is
// registered with (i.e. until Server::Shutdown has returned).
#ifndef CNNSERVE_SERVER_TRANSPORT_CLASSIFIER_SERVICE_H_
#define CNNSERVE_SERVER_TRANSPORT_CLASSIFIER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cnnserve/v1/classifier.grpc.pb.h"
#include "server/auth/authorizer.h"
#include "server/service/inference_service.h"
#include "server/transport/grpc_auth.h"

namespace cnnserve {

struct ClassifierServiceOptions {
  // Requests of one ClassifyStream that have been read and not yet answered (>= 1).
  int max_in_flight_per_stream = 16;
};

// The generated service with every method taking ByteBuffers (see the top of this file).
// (v1::Classifier::CallbackService, every method raw.)
using ClassifierServiceBase = v1::Classifier::WithRawCallbackMethod_Classify<
    v1::Classifier::WithRawCallbackMethod_ClassifyStream<v1::Classifier::WithRawCallbackMethod_ListModels<
        v1::Classifier::WithRawCallbackMethod_DescribeModel<v1::Classifier::WithRawCallbackMethod_Explain<
            v1::Classifier::WithRawCallbackMethod_Embed<v1::Classifier::Service>>>>>>;

class ClassifierService final : public ClassifierServiceBase {
 public:
  // `inference` is not owned and must not be null. `authorizer` (shared; null: every call allowed) is asked
  // before each call does anything (grpc_auth.h).
  ClassifierService(InferenceService* inference, const ClassifierServiceOptions& options,
                    std::shared_ptr<const auth::Authorizer> authorizer = nullptr);

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ClassifyStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DescribeModel(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  // Explain and Embed (server/native/native_explain.h) hand the request to the service layer like Classify.
  grpc::ServerUnaryReactor* Explain(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;

 private:
  // A unary call run by the service layer: the authorizer's refusal, or the request parsed from `request`,
  // `start(inference, request, response, deadline_us, cancelled, finish)` (ClassifyNative and its kin), and the
  // response serialized into `response` when it finished OK; failures logged once (LogCallFailure).
  template <typename Request, typename Response, typename Start>
  grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context, std::string_view method,
                                     const grpc::ByteBuffer& request, grpc::ByteBuffer* response, Start start);

  InferenceService* const inference_;
  const ClassifierServiceOptions options_;
  const CallAuthorizer auth_;
};

// Converts a gRPC call deadline (system clock; time_point::max() when the client set none) into InferenceService's
// convention: microseconds on the steady clock (SteadyNowMicros()), 0 meaning no deadline. A deadline that has
// already passed maps to a value <= the current steady time (never 0), so that it is reported as exceeded.
int64_t DeadlineToSteadyMicros(std::chrono::system_clock::time_point deadline);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_TRANSPORT_CLASSIFIER_SERVICE_H_
