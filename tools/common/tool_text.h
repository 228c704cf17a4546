// Text helpers shared by the command-line tools (cnnctl, cnnload): JSON string quoting and gRPC status code
// names. Thread-safety: pure functions.
#ifndef CNNSERVE_TOOLS_COMMON_TOOL_TEXT_H_
#define CNNSERVE_TOOLS_COMMON_TOOL_TEXT_H_

#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

namespace cnnserve::tools {

// `text` as a JSON string literal, quotes included: ", \ and control characters escaped (\n, \r, \t, \u00XX).
std::string JsonQuote(std::string_view text);

// "OK", "INVALID_ARGUMENT", ...; "CODE_<n>" for a value outside gRPC's list.
std::string GrpcCodeName(grpc::StatusCode code);

}  // namespace cnnserve::tools

#endif  // CNNSERVE_TOOLS_COMMON_TOOL_TEXT_H_
