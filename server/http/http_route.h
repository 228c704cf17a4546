// The pieces every HTTP route shares: what a route is (method, path pattern, the operation whose scope it needs,
// handler), its reply, and the one mapping of a Status to an HTTP answer.
//
// Status -> HTTP code (DESIGN.md section 4's codes, as KServe's REST binding and Triton answer them):
//   INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE 400; UNAUTHENTICATED 401; PERMISSION_DENIED 403;
//   NOT_FOUND 404; ALREADY_EXISTS, ABORTED 409; RESOURCE_EXHAUSTED 413 (a message over the size limit);
//   CANCELLED 499; UNIMPLEMENTED 501; UNAVAILABLE 503; DEADLINE_EXCEEDED 504; anything else 500.
// Error bodies are {"error": "<message>"}: the message cut to kMaxErrorMessageBytes and JSON-escaped (bytes that
// are not UTF-8 become U+FFFD), so a client's bytes echoed in a message cannot break the body.
//
// Thread-safety: pure functions; routes are immutable once built and their handlers run on any worker thread.
#ifndef CNNSERVE_SERVER_HTTP_HTTP_ROUTE_H_
#define CNNSERVE_SERVER_HTTP_HTTP_ROUTE_H_

#include <httplib.h>

#include <functional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/status.h"

namespace cnnserve::http {

inline constexpr char kJsonContentType[] = "application/json";
inline constexpr size_t kMaxErrorMessageBytes = 1024;

// What a route answers.
struct Reply {
  int status = 200;
  std::string content_type = kJsonContentType;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// A handler gets the request and the pattern's capture groups (captures[0] is the first group).
using RouteHandler = std::function<void(const httplib::Request& request, const std::vector<std::string>& captures,
                                        Reply* reply)>;

struct Route {
  std::string method;  // "GET" or "POST" (GET routes answer HEAD too)
  std::regex path;     // matched against the whole path
  // The operation the route performs, named by the gRPC method it corresponds to ("/inference.
  // GRPCInferenceService/ModelInfer"); its scope (server/auth/scope.h) is what a token needs. Empty: open to all
  // (the static playground files, which hold no data).
  std::string operation;
  RouteHandler handler;
};

int HttpStatusOf(StatusCode code);

// {"error": message} with the status's HTTP code.
void SetError(const Status& status, Reply* reply);

// {"error": message}, bounded and escaped.
std::string ErrorBody(std::string_view message);

// Inference requests over HTTP may carry a timeout in microseconds, as Triton's HTTP clients send it (the
// "timeout" parameter of a KServe request, the "timeout" query parameter of the native route): the request's
// deadline is then that long after it arrived. The most it may be (one day), and the deadline (steady clock,
// SteadyNowMicros) of a timeout; INVALID_ARGUMENT naming `field` unless 0 < timeout_us <= kMaxTimeoutUs.
inline constexpr int64_t kMaxTimeoutUs = int64_t{24} * 3600 * 1'000'000;
StatusOr<int64_t> DeadlineAfter(int64_t timeout_us, std::string_view field);

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_HTTP_ROUTE_H_
