#include "server/transport/grpc_auth.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <string>
#include <utility>

namespace cnnserve {
namespace {

constexpr char kAuthorizationKey[] = "authorization";

std::optional<std::string_view> AuthorizationOf(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(kAuthorizationKey);
  if (it == metadata.end()) return std::nullopt;
  return std::string_view(it->second.data(), it->second.size());
}

}  // namespace

CallAuthorizer::CallAuthorizer(std::shared_ptr<const auth::Authorizer> authorizer)
    : authorizer_(std::move(authorizer)) {}

Status CallAuthorizer::Check(grpc::CallbackServerContext* context, std::string_view method) const {
  if (authorizer_ == nullptr || !authorizer_->enabled()) return OkStatus();
  const Status status = authorizer_->CheckMethod(AuthorizationOf(*context), method);
  if (status.ok()) return status;
  const Status refusal = status.WithContext(method);
  spdlog::info("refused {} from {}: {}", method, context->peer(), refusal.ToString());
  return refusal;
}

grpc::ServerUnaryReactor* CallAuthorizer::RefuseUnary(grpc::CallbackServerContext* context,
                                                      std::string_view method) const {
  const Status status = Check(context, method);
  if (status.ok()) return nullptr;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace cnnserve
