// ReflectionService: gRPC server reflection (grpc.reflection.v1alpha.ServerReflection,
// proto/grpc/reflection/v1alpha/reflection.proto) served by cnnserve itself from protobuf's generated descriptor
// pool, so that grpcurl and friends need no .proto files and reflection is authorized like every other RPC (scope
// "metadata", once per stream; gRPC's own reflection plugin cannot be made to refuse a call).
//
// Each request on the stream gets one response, in order:
//   list_services                  the services this server registers (given at construction)
//   file_by_filename               that file, then the files it imports (transitively) not yet sent on this stream
//   file_containing_symbol         the same for the file defining a fully qualified symbol (service, method,
//                                  message, field, enum...)
//   file_containing_extension      the same for the file defining extension N of a message type
//   all_extension_numbers_of_type  the extension numbers of a message type, ascending
// Unknown names get error_response NOT_FOUND, a request with no kind set INVALID_ARGUMENT; the stream goes on.
//
// Thread-safety: the service is shared by gRPC's threads; each stream's reactor has at most one read or write
// outstanding, so it needs no lock. Ownership: owns its list of names; shares the Authorizer.
#ifndef CNNSERVE_SERVER_TRANSPORT_REFLECTION_SERVICE_H_
#define CNNSERVE_SERVER_TRANSPORT_REFLECTION_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "server/auth/authorizer.h"
#include "server/transport/grpc_auth.h"

namespace cnnserve {

// The full name of the reflection service.
inline constexpr char kReflectionServiceName[] = "grpc.reflection.v1alpha.ServerReflection";

class ReflectionService final : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  // `service_names`: the fully qualified services to list (this one is added).
  ReflectionService(std::vector<std::string> service_names, std::shared_ptr<const auth::Authorizer> authorizer);

  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

  // The answer to one request; `sent_files` holds the names of the files this stream has sent (updated).
  // Exposed for tests.
  grpc::reflection::v1alpha::ServerReflectionResponse Answer(
      const grpc::reflection::v1alpha::ServerReflectionRequest& request, std::set<std::string>* sent_files) const;

 private:
  std::vector<std::string> service_names_;
  const CallAuthorizer auth_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_TRANSPORT_REFLECTION_SERVICE_H_
