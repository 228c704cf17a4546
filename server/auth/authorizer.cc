#include "server/auth/authorizer.h"

#include <cctype>
#include <utility>

namespace cnnserve::auth {
namespace {

constexpr std::string_view kBearer = "bearer";
constexpr char kHowTo[] =
    "send the metadata 'authorization: Bearer TOKEN' with a token of the server's --auth-token-file";

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// The token of "Bearer TOKEN", nullopt when the value is not of that form.
std::optional<std::string_view> BearerToken(std::string_view value) {
  const size_t space = value.find_first_of(" \t");
  if (space == std::string_view::npos || !EqualsIgnoringCase(value.substr(0, space), kBearer)) return std::nullopt;
  std::string_view token = value.substr(space);
  const size_t begin = token.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return std::nullopt;
  token.remove_prefix(begin);
  const size_t end = token.find_last_not_of(" \t");
  token = token.substr(0, end + 1);
  if (token.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
  return token;
}

}  // namespace

StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(const AuthorizerOptions& options) {
  if (options.token_file.empty()) return FromEntries({});
  CNN_ASSIGN_OR_RETURN(std::vector<TokenEntry> entries, LoadTokenFile(options.token_file));
  return FromEntries(std::move(entries));
}

std::unique_ptr<Authorizer> Authorizer::FromEntries(std::vector<TokenEntry> entries) {
  return std::unique_ptr<Authorizer>(new Authorizer(std::move(entries)));
}

Status Authorizer::Check(std::optional<std::string_view> authorization, Scope needed) const {
  if (!enabled()) return OkStatus();
  if (!authorization) return UnauthenticatedError(std::string("no credentials: ") + kHowTo);
  const std::optional<std::string_view> token = BearerToken(*authorization);
  if (!token) {
    return Status(StatusCode::kUnauthenticated, std::string("authorization is not 'Bearer TOKEN': ") + kHowTo);
  }
  const Sha256Digest presented = Sha256(*token);
  // Every entry is compared, match or not; the scopes of the match are picked with a mask, not a branch.
  // (Token files have no duplicates, so at most one entry matches.)
  ScopeSet granted = 0;
  ScopeSet matched = 0;
  for (const TokenEntry& entry : entries_) {
    const ScopeSet mask = ScopeSet{0} - static_cast<ScopeSet>(DigestsEqual(entry.digest, presented));
    granted |= entry.scopes & mask;
    matched |= mask;
  }
  if (matched == 0) return UnauthenticatedError(std::string("unknown token: ") + kHowTo);
  if (!Grants(granted, needed)) {
    return Status(StatusCode::kPermissionDenied, "token lacks scope \"" + std::string(ScopeName(needed)) + "\"");
  }
  return OkStatus();
}

Status Authorizer::CheckMethod(std::optional<std::string_view> authorization, std::string_view method) const {
  const Access access = AccessFor(method);
  if (access.open) return OkStatus();
  return Check(authorization, access.scope);
}

}  // namespace cnnserve::auth
