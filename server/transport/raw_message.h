// Raw (ByteBuffer) methods: every method of the native and KServe services is registered with gRPC as a raw method
// and parses its request bytes itself, because
// gRPC 1.51's callback API answers bytes that do not parse as the method's message with UNIMPLEMENTED and an
// empty message before any handler runs (CallbackUnaryHandler: a failed Deserialize gets an
// "UnimplementedUnaryReactor"). Parsed here, such bytes get INVALID_ARGUMENT naming the message type and the size.
//
// RawStreamHandler wraps a typed StreamHandler (stream_reactor.h) so that StreamReactor can run over ByteBuffers:
// each request is parsed as it is started (a request that does not parse fails like any other: it ends a
// kRequestOrder stream, or is answered in a kCompletionOrder stream through error_response), and each answer is
// serialized into its ByteBuffer before `done`.
// Thread-safety: pure functions; the handlers are as thread-safe as the typed ones.
#ifndef CNNSERVE_SERVER_TRANSPORT_RAW_MESSAGE_H_
#define CNNSERVE_SERVER_TRANSPORT_RAW_MESSAGE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "engine/common/status.h"
#include "server/transport/stream_reactor.h"

namespace cnnserve {

// Parses `bytes` as a `Message`. INVALID_ARGUMENT "the request (N bytes) does not parse as <full type name>".
template <typename Message>
Status ParseRawRequest(const grpc::ByteBuffer& bytes, Message* message) {
  grpc::ByteBuffer copy(bytes);  // shares the slices; GenericDeserialize consumes its buffer
  const grpc::Status parsed = grpc::GenericDeserialize<grpc::ProtoBufferReader, Message>(&copy, message);
  if (parsed.ok()) return OkStatus();
  return InvalidArgumentError("the request (" + std::to_string(bytes.Length()) + " bytes) does not parse as " +
                              Message::descriptor()->full_name());
}

// Serializes `message` into `out` (replacing what it held).
template <typename Message>
Status SerializeRawResponse(const Message& message, grpc::ByteBuffer* out) {
  bool own_buffer = false;
  const grpc::Status serialized =
      grpc::GenericSerialize<grpc::ProtoBufferWriter, Message>(message, out, &own_buffer);
  if (serialized.ok()) return OkStatus();
  return InternalError("the response could not be serialized: " + serialized.error_message().substr(0, 200));
}

// A unary raw call answered at once: parses the request, runs `answer(request, &response)` and serializes the
// response into `out`. The parse error, answer's error or the serialization's; OK with `out` filled.
template <typename Request, typename Response, typename Answer>
Status AnswerRaw(const grpc::ByteBuffer& in, grpc::ByteBuffer* out, Answer&& answer) {
  Request request;
  Response response;
  CNN_RETURN_IF_ERROR(ParseRawRequest(in, &request));
  CNN_RETURN_IF_ERROR(answer(request, &response));
  return SerializeRawResponse(response, out);
}

// A unary raw call: parses the request, runs `run(request, response, finish)` and, once `finish` is called with
// OK, serializes the response into `out`; `done` then gets the final status (the parse or serialization error,
// or run's). `run` may call `finish` on any thread, once.
template <typename Request, typename Response>
void RunRaw(const grpc::ByteBuffer& in, grpc::ByteBuffer* out,
            const std::function<void(const Request&, Response*, std::function<void(Status)>)>& run,
            std::function<void(Status)> done) {
  struct Call {
    Request request;
    Response response;
  };
  auto call = std::make_shared<Call>();
  if (Status parsed = ParseRawRequest(in, &call->request); !parsed.ok()) return done(std::move(parsed));
  Call* const raw = call.get();
  run(raw->request, &raw->response, [call = std::move(call), out, done = std::move(done)](Status status) {
    if (status.ok()) status = SerializeRawResponse(call->response, out);
    done(std::move(status));
  });
}

// The ByteBuffer form of a typed stream handler (see the top of this file).
template <typename Request, typename Response>
StreamHandler<grpc::ByteBuffer, grpc::ByteBuffer> RawStreamHandler(StreamHandler<Request, Response> typed) {
  auto shared = std::make_shared<const StreamHandler<Request, Response>>(std::move(typed));
  StreamHandler<grpc::ByteBuffer, grpc::ByteBuffer> raw;
  raw.method = shared->method;
  raw.order = shared->order;
  raw.start = [shared](const grpc::ByteBuffer& in, grpc::ByteBuffer* out, std::function<void(Status)> done) {
    RunRaw<Request, Response>(in, out, shared->start, std::move(done));
  };
  // Only asked for failed requests (log lines, error answers): parsing again costs nothing on the good path.
  raw.request_id = [shared](const grpc::ByteBuffer& in) {
    Request request;
    return ParseRawRequest(in, &request).ok() ? shared->request_id(request) : std::string();
  };
  if (shared->error_response) {
    raw.error_response = [shared](const grpc::ByteBuffer& in, const Status& status, grpc::ByteBuffer* out) {
      Request request;
      (void)ParseRawRequest(in, &request);  // an unparseable request is answered without its id
      Response response;
      shared->error_response(request, status, &response);
      (void)SerializeRawResponse(response, out);
    };
  }
  return raw;
}

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_TRANSPORT_RAW_MESSAGE_H_
