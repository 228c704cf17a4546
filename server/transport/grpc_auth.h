// CallAuthorizer: the gRPC side of the authorization layer (server/auth/authorizer.h), called at the top of every
// handler of every service cnnserve implements (Classifier, KServe, reflection) before it does any work:
//
//     if (auto* refused = auth_.RefuseUnary(context, "/cnnserve.v1.Classifier/ListModels")) return refused;
//
// It reads the `authorization` metadata of the call (the first one when a client sends several) and asks the
// Authorizer for the method's scope (auth::AccessFor: open methods pass without a token). A refusal is
// UNAUTHENTICATED or PERMISSION_DENIED, prefixed with the method, answered through ToGrpcStatus like every other
// status, and logged once at info with the peer, the method and the status (never the metadata's value). Stream
// RPCs are authorized once, when the stream starts: a refused stream is finished before any message is read.
// gRPC's default health service (grpc.health.v1) is not ours and stays open, as the table says.
// Why not an interceptor: gRPC 1.51's server interceptors cannot end a call with a status of their own, and
// AuthMetadataProcessor runs only on secure ports, while tokens must also work on a plaintext port (behind a
// TLS-terminating proxy).
//
// Thread-safety: immutable; shared by all of gRPC's threads. Ownership: shares the Authorizer.
#ifndef CNNSERVE_SERVER_TRANSPORT_GRPC_AUTH_H_
#define CNNSERVE_SERVER_TRANSPORT_GRPC_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string_view>

#include "engine/common/status.h"
#include "server/auth/authorizer.h"
#include "server/transport/grpc_status.h"

namespace cnnserve {

// A bidirectional stream refused at its start: it finishes at once with the status and reads nothing.
template <typename Request, typename Response>
class RefusedStreamReactor final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit RefusedStreamReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

class CallAuthorizer {
 public:
  // `authorizer` null: every call is allowed (as with an Authorizer without tokens).
  explicit CallAuthorizer(std::shared_ptr<const auth::Authorizer> authorizer);

  // OK when the call may go on, else the refusal (already logged).
  Status Check(grpc::CallbackServerContext* context, std::string_view method) const;

  // nullptr when the call may go on; else the call's default reactor, finished with the refusal: return it.
  grpc::ServerUnaryReactor* RefuseUnary(grpc::CallbackServerContext* context, std::string_view method) const;

  // nullptr when the stream may go on; else a reactor that ends it with the refusal: return it.
  template <typename Request, typename Response>
  grpc::ServerBidiReactor<Request, Response>* RefuseStream(grpc::CallbackServerContext* context,
                                                           std::string_view method) const {
    const Status status = Check(context, method);
    if (status.ok()) return nullptr;
    return new RefusedStreamReactor<Request, Response>(ToGrpcStatus(status));
  }

 private:
  const std::shared_ptr<const auth::Authorizer> authorizer_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_TRANSPORT_GRPC_AUTH_H_
