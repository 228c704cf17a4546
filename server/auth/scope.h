// Scopes of cnnserve's token authorization and the scope each RPC needs: the protocol-neutral half of the
// authorization layer (authorizer.h holds the tokens). No gRPC, no protobuf: every front end (gRPC now, HTTP to
// come) names its operation by the gRPC method path it corresponds to and asks AccessFor.
//
// Scopes (the names used in token files):
//   infer          Classifier/Classify, ClassifyStream, Explain, Embed; KServe ModelInfer, ModelStreamInfer
//   metadata       Classifier/ListModels, DescribeModel; KServe ServerMetadata, ModelMetadata, ModelConfig,
//                  ModelReady, RepositoryIndex; server reflection (v1alpha and v1)
//   statistics     KServe ModelStatistics
//   model-control  KServe RepositoryModelLoad, RepositoryModelUnload
//   all            every scope above, and methods not in the table
// Open (no token needed, so that probes work): grpc.health.v1.Health/Check and Watch, KServe ServerLive and
// ServerReady.
// A method that is not in the table needs `all` (deny by default): a new RPC is closed to limited tokens until
// the table names its scope.
// Thread-safety: pure functions over constant tables.
#ifndef CNNSERVE_SERVER_AUTH_SCOPE_H_
#define CNNSERVE_SERVER_AUTH_SCOPE_H_

#include <cstdint>
#include <optional>
#include <string_view>

namespace cnnserve::auth {

enum class Scope : uint8_t {
  kInfer = 0,
  kMetadata = 1,
  kStatistics = 2,
  kModelControl = 3,
  kAll = 4,
};

// The token-file name of `scope`: "infer", "metadata", "statistics", "model-control", "all".
std::string_view ScopeName(Scope scope);
// The scope called `name` (exact, lower case), nullopt for anything else.
std::optional<Scope> ParseScope(std::string_view name);

// A set of scopes as bits (1 << Scope). A set holding kAll grants every scope.
using ScopeSet = uint32_t;
constexpr ScopeSet ScopeBit(Scope scope) { return ScopeSet{1} << static_cast<unsigned>(scope); }
// Whether `granted` allows an operation that needs `needed`.
constexpr bool Grants(ScopeSet granted, Scope needed) {
  return (granted & (ScopeBit(needed) | ScopeBit(Scope::kAll))) != 0;
}

// What a method needs: nothing (open) or a token with `scope`.
struct Access {
  bool open = false;
  Scope scope = Scope::kAll;
  friend bool operator==(const Access&, const Access&) = default;
};

// The access rule of a method named by its gRPC path, "/package.Service/Method" (the leading '/' may be left
// out); nullopt when the table does not list it.
std::optional<Access> FindAccess(std::string_view method);
// FindAccess, or {open: false, scope: kAll} for a method the table does not list.
Access AccessFor(std::string_view method);

}  // namespace cnnserve::auth

#endif  // CNNSERVE_SERVER_AUTH_SCOPE_H_
