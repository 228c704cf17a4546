// The one place where a cnnserve::Status becomes a grpc::Status (DESIGN.md section 5, convention 1), and the one
// log line of a failed call.
//
// cnnserve::StatusCode uses gRPC's numbering, so the code maps one to one and the message is kept as is.
// Thread-safety: a pure function.
#ifndef CNNSERVE_SERVER_TRANSPORT_GRPC_STATUS_H_
#define CNNSERVE_SERVER_TRANSPORT_GRPC_STATUS_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/status.h>

#include <string>

#include "engine/common/status.h"

namespace cnnserve {

// OK -> grpc::Status::OK; any other code -> the gRPC code of the same number with the same message. A code
// outside gRPC's range (which cnnserve never produces) becomes UNKNOWN naming the number.
grpc::Status ToGrpcStatus(const Status& status);

// Logs a failed call at debug level with its peer (the service layer logs each failed request itself, once, at
// info or warn). Does nothing for OK.
void LogCallFailure(const char* method, const grpc::CallbackServerContext* context, const std::string& request_id,
                    const Status& status);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_TRANSPORT_GRPC_STATUS_H_
