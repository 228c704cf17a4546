#include "server/http/http_route.h"

#include <nlohmann/json.hpp>

#include "server/servables/servable.h"  // SteadyNowMicros

namespace cnnserve::http {

int HttpStatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kResourceExhausted:
      return 413;
    case StatusCode::kCancelled:
      return 499;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorBody(std::string_view message) {
  std::string text(message.substr(0, kMaxErrorMessageBytes));
  if (message.size() > kMaxErrorMessageBytes) text += "...";
  const nlohmann::json body = {{"error", text}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void SetError(const Status& status, Reply* reply) {
  reply->status = HttpStatusOf(status.code());
  reply->content_type = kJsonContentType;
  reply->body = ErrorBody(status.message());
}

StatusOr<int64_t> DeadlineAfter(int64_t timeout_us, std::string_view field) {
  if (timeout_us < 1 || timeout_us > kMaxTimeoutUs) {
    return InvalidArgumentError(std::string(field) + " " + std::to_string(timeout_us) +
                                " must be a timeout in microseconds from 1 to " + std::to_string(kMaxTimeoutUs));
  }
  return SteadyNowMicros() + timeout_us;
}

}  // namespace cnnserve::http
