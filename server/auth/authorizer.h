// Authorizer: the one authorization layer of cnnserve, called by every front end before it does any work.
//
// A request presents the value of its `authorization` header (gRPC metadata or HTTP header) and the operation
// names the scope it needs (scope.h: AccessFor maps a method to it). Check answers:
//   - OK when no token file is configured (authorization is off), or the token is known and has the scope (or
//     `all`);
//   - UNAUTHENTICATED when the header is missing, is not "Bearer TOKEN" (scheme case-insensitive, spaces after
//     it allowed) or the token is unknown; the message says how to authenticate and never repeats the token;
//   - PERMISSION_DENIED, `token lacks scope "model-control"`, when a known token lacks the scope.
// Tokens are kept only as SHA-256 digests (token_file.h). A presented token is hashed and compared with every
// digest in constant time, without stopping at a match, so the time taken does not say how much of a digest
// matched or which entry did. Nothing here logs; callers log failures without the header value.
// Thread-safety: immutable after Create; Check may be called from any number of threads at once.
#ifndef CNNSERVE_SERVER_AUTH_AUTHORIZER_H_
#define CNNSERVE_SERVER_AUTH_AUTHORIZER_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/status.h"
#include "server/auth/scope.h"
#include "server/auth/token_file.h"

namespace cnnserve::auth {

struct AuthorizerOptions {
  // The token file (token_file.h); empty: authorization is off and Check allows everything.
  std::string token_file;
};

class Authorizer {
 public:
  // Loads the token file when one is named. Errors of LoadTokenFile (FAILED_PRECONDITION unreadable,
  // INVALID_ARGUMENT "FILE:LINE: ..." for bad content).
  static StatusOr<std::unique_ptr<Authorizer>> Create(const AuthorizerOptions& options);
  // An Authorizer over `entries` (as ParseTokenFile returns them); none: authorization is off.
  static std::unique_ptr<Authorizer> FromEntries(std::vector<TokenEntry> entries);

  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  // Whether tokens are required (a token file was given).
  bool enabled() const { return !entries_.empty(); }
  size_t token_count() const { return entries_.size(); }

  // `authorization`: the header's value, nullopt when the request has none.
  Status Check(std::optional<std::string_view> authorization, Scope needed) const;
  // Check with the scope of `method` (AccessFor); open methods are allowed without looking at the header.
  Status CheckMethod(std::optional<std::string_view> authorization, std::string_view method) const;

 private:
  explicit Authorizer(std::vector<TokenEntry> entries) : entries_(std::move(entries)) {}

  const std::vector<TokenEntry> entries_;
};

}  // namespace cnnserve::auth

#endif  // CNNSERVE_SERVER_AUTH_AUTHORIZER_H_
