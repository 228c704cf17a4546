// The token file of --auth-token-file: which bearer tokens exist and what each may do.
//
// Format, one token per line:
//     TOKEN SCOPE[,SCOPE...]          e.g.  3f9c...e1 infer,metadata
//     sha256:HEX SCOPE[,SCOPE...]     HEX: the 64 hex digits of SHA-256 of the token (so the file holds no secret;
//                                     make it with  printf %s "$TOKEN" | sha256sum)
// Scopes are those of scope.h (infer, metadata, statistics, model-control, all), separated by commas (spaces
// around them are allowed). `#` starts a comment at the start of a line or after whitespace (a token may contain
// '#' but not begin with it); blank lines are skipped; "\r\n" line ends are accepted. A token is 1 to 4096
// visible ASCII characters (what an HTTP or gRPC header value can carry).
// Errors (INVALID_ARGUMENT, "FILE:LINE: what"): a line without scopes, an unknown or empty scope, bad sha256 hex,
// a token with a character outside visible ASCII, the same token twice (as text or digest), a file with no
// token. A file that cannot be read is FAILED_PRECONDITION. Messages name the line and the position of a bad
// scope but never repeat a token or any other text of the line, which might be a token written in the wrong place.
// Only SHA-256 digests are kept: a plain token is hashed as it is parsed.
// Thread-safety: pure functions. Uses OpenSSL's libcrypto for SHA-256.
#ifndef CNNSERVE_SERVER_AUTH_TOKEN_FILE_H_
#define CNNSERVE_SERVER_AUTH_TOKEN_FILE_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/status.h"
#include "server/auth/scope.h"

namespace cnnserve::auth {

inline constexpr size_t kSha256Bytes = 32;
using Sha256Digest = std::array<uint8_t, kSha256Bytes>;

// SHA-256 of `data`.
Sha256Digest Sha256(std::string_view data);

// Whether two digests are equal, in time that does not depend on where they differ (CRYPTO_memcmp).
bool DigestsEqual(const Sha256Digest& a, const Sha256Digest& b);

// One line of a token file.
struct TokenEntry {
  Sha256Digest digest{};
  ScopeSet scopes = 0;
  int line = 0;  // 1-based line number in the file
};

// Parses the text of a token file; `file_name` is used in messages only.
StatusOr<std::vector<TokenEntry>> ParseTokenFile(std::string_view text, std::string_view file_name);

// Reads `path` (at most 1 MiB) and parses it.
StatusOr<std::vector<TokenEntry>> LoadTokenFile(const std::string& path);

}  // namespace cnnserve::auth

#endif  // CNNSERVE_SERVER_AUTH_TOKEN_FILE_H_
