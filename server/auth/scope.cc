#include "server/auth/scope.h"

#include <array>
#include <utility>

namespace cnnserve::auth {
namespace {

constexpr std::array<std::pair<Scope, std::string_view>, 5> kScopeNames = {{
    {Scope::kInfer, "infer"},
    {Scope::kMetadata, "metadata"},
    {Scope::kStatistics, "statistics"},
    {Scope::kModelControl, "model-control"},
    {Scope::kAll, "all"},
}};

constexpr Access kOpen{true, Scope::kAll};
constexpr Access Needs(Scope scope) { return Access{false, scope}; }

// Every RPC cnnserve serves, by gRPC path without the leading '/'.
constexpr std::pair<std::string_view, Access> kMethods[] = {
    // cnnserve.v1.Classifier (proto/cnnserve/v1/classifier.proto)
    {"cnnserve.v1.Classifier/Classify", Needs(Scope::kInfer)},
    {"cnnserve.v1.Classifier/ClassifyStream", Needs(Scope::kInfer)},
    {"cnnserve.v1.Classifier/ListModels", Needs(Scope::kMetadata)},
    {"cnnserve.v1.Classifier/DescribeModel", Needs(Scope::kMetadata)},
    {"cnnserve.v1.Classifier/Explain", Needs(Scope::kInfer)},
    {"cnnserve.v1.Classifier/Embed", Needs(Scope::kInfer)},
    // KServe v2 (proto/inference/grpc_service.proto)
    {"inference.GRPCInferenceService/ServerLive", kOpen},
    {"inference.GRPCInferenceService/ServerReady", kOpen},
    {"inference.GRPCInferenceService/ModelReady", Needs(Scope::kMetadata)},
    {"inference.GRPCInferenceService/ServerMetadata", Needs(Scope::kMetadata)},
    {"inference.GRPCInferenceService/ModelMetadata", Needs(Scope::kMetadata)},
    {"inference.GRPCInferenceService/ModelConfig", Needs(Scope::kMetadata)},
    {"inference.GRPCInferenceService/RepositoryIndex", Needs(Scope::kMetadata)},
    {"inference.GRPCInferenceService/ModelInfer", Needs(Scope::kInfer)},
    {"inference.GRPCInferenceService/ModelStreamInfer", Needs(Scope::kInfer)},
    {"inference.GRPCInferenceService/ModelStatistics", Needs(Scope::kStatistics)},
    {"inference.GRPCInferenceService/RepositoryModelLoad", Needs(Scope::kModelControl)},
    {"inference.GRPCInferenceService/RepositoryModelUnload", Needs(Scope::kModelControl)},
    // Probes.
    {"grpc.health.v1.Health/Check", kOpen},
    {"grpc.health.v1.Health/Watch", kOpen},
    // Server reflection describes the API: metadata.
    {"grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Needs(Scope::kMetadata)},
    {"grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Needs(Scope::kMetadata)},
};

}  // namespace

std::string_view ScopeName(Scope scope) {
  for (const auto& [s, name] : kScopeNames) {
    if (s == scope) return name;
  }
  return "unknown";
}

std::optional<Scope> ParseScope(std::string_view name) {
  for (const auto& [scope, scope_name] : kScopeNames) {
    if (scope_name == name) return scope;
  }
  return std::nullopt;
}

std::optional<Access> FindAccess(std::string_view method) {
  if (method.starts_with('/')) method.remove_prefix(1);
  for (const auto& [name, access] : kMethods) {
    if (name == method) return access;
  }
  return std::nullopt;
}

Access AccessFor(std::string_view method) { return FindAccess(method).value_or(Needs(Scope::kAll)); }

}  // namespace cnnserve::auth
