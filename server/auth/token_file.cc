#include "server/auth/token_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>

#include "engine/common/units.h"

namespace cnnserve::auth {
namespace {

constexpr std::string_view kSha256Prefix = "sha256:";
constexpr size_t kMaxTokenChars = 4096;
constexpr std::streamsize kMaxFileBytes = kBytesPerMiB;
constexpr std::string_view kWhitespace = " \t";

bool IsVisibleAscii(char c) { return c > ' ' && c < 0x7f; }

std::string_view Trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  const size_t end = s.find_last_not_of(kWhitespace);
  return s.substr(begin, end - begin + 1);
}

// The line without its comment: '#' at the start or after whitespace begins one.
std::string_view StripComment(std::string_view line) {
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) return line.substr(0, i);
  }
  return line;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<Sha256Digest> ParseHexDigest(std::string_view hex) {
  if (hex.size() != 2 * kSha256Bytes) return std::nullopt;
  Sha256Digest digest{};
  for (size_t i = 0; i < kSha256Bytes; ++i) {
    const int high = HexValue(hex[2 * i]);
    const int low = HexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    digest[i] = static_cast<uint8_t>(high * 16 + low);
  }
  return digest;
}

class LineError {
 public:
  LineError(std::string_view file, int line) : prefix_(std::string(file) + ":" + std::to_string(line) + ": ") {}
  Status operator()(const std::string& what) const { return InvalidArgumentError(prefix_ + what); }

 private:
  std::string prefix_;
};

// The digest of the token field (plain or sha256:HEX).
StatusOr<Sha256Digest> TokenDigest(std::string_view token, const LineError& error) {
  if (token.size() > kMaxTokenChars) {
    return error("the token is longer than " + std::to_string(kMaxTokenChars) + " characters");
  }
  for (char c : token) {
    if (!IsVisibleAscii(c)) return error("the token has a character outside visible ASCII");
  }
  if (token.starts_with(kSha256Prefix)) {
    const std::optional<Sha256Digest> digest = ParseHexDigest(token.substr(kSha256Prefix.size()));
    if (!digest) return error("sha256: must be followed by exactly 64 hex digits");
    return *digest;
  }
  return Sha256(token);
}

// The scopes of "SCOPE[,SCOPE...]" (whitespace around the commas allowed).
StatusOr<ScopeSet> ParseScopes(std::string_view list, const LineError& error) {
  ScopeSet scopes = 0;
  int position = 0;
  while (true) {
    ++position;
    const size_t comma = list.find(',');
    const std::string_view item = Trim(list.substr(0, comma));
    if (item.empty()) return error("scope " + std::to_string(position) + " is empty");
    const std::optional<Scope> scope = ParseScope(item);
    if (!scope) {
      return error("scope " + std::to_string(position) +
                   " is unknown (scopes: infer, metadata, statistics, model-control, all)");
    }
    scopes |= ScopeBit(*scope);
    if (comma == std::string_view::npos) return scopes;
    list.remove_prefix(comma + 1);
  }
}

// One non-blank line: its entry.
StatusOr<TokenEntry> ParseLine(std::string_view content, int line_number, const LineError& error) {
  const size_t token_end = content.find_first_of(kWhitespace);
  const std::string_view scopes = token_end == std::string_view::npos ? "" : Trim(content.substr(token_end));
  if (scopes.empty()) return error("a token needs its scopes: TOKEN SCOPE[,SCOPE...]");
  TokenEntry entry;
  entry.line = line_number;
  CNN_ASSIGN_OR_RETURN(entry.digest, TokenDigest(content.substr(0, token_end), error));
  CNN_ASSIGN_OR_RETURN(entry.scopes, ParseScopes(scopes, error));
  return entry;
}

}  // namespace

Sha256Digest Sha256(std::string_view data) {
  Sha256Digest digest{};
  unsigned int size = 0;
  // EVP_Digest fails only when out of memory; a zero digest then matches nothing a client can present.
  if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != kSha256Bytes) {
    digest.fill(0);
  }
  return digest;
}

bool DigestsEqual(const Sha256Digest& a, const Sha256Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), kSha256Bytes) == 0;
}

StatusOr<std::vector<TokenEntry>> ParseTokenFile(std::string_view text, std::string_view file_name) {
  std::vector<TokenEntry> entries;
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    const std::string_view content = Trim(StripComment(line));
    if (content.empty()) continue;
    const LineError error(file_name, line_number);
    CNN_ASSIGN_OR_RETURN(TokenEntry entry, ParseLine(content, line_number, error));
    for (const TokenEntry& earlier : entries) {
      if (DigestsEqual(earlier.digest, entry.digest)) {
        return error("the same token as line " + std::to_string(earlier.line));
      }
    }
    entries.push_back(entry);
  }
  if (entries.empty()) {
    return InvalidArgumentError(std::string(file_name) +
                                ": holds no token (lines 'TOKEN SCOPE[,SCOPE...]'); without tokens every call "
                                "would be refused");
  }
  return entries;
}

StatusOr<std::vector<TokenEntry>> LoadTokenFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return FailedPreconditionError(path + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return FailedPreconditionError(path + ": cannot read: " + std::strerror(errno));
  std::string text(static_cast<size_t>(kMaxFileBytes) + 1, '\0');
  in.read(text.data(), kMaxFileBytes + 1);
  if (in.bad()) return FailedPreconditionError(path + ": read error");
  text.resize(static_cast<size_t>(in.gcount()));
  if (static_cast<std::streamsize>(text.size()) > kMaxFileBytes) {
    return FailedPreconditionError(path + ": is larger than 1 MiB");
  }
  StatusOr<std::vector<TokenEntry>> entries = ParseTokenFile(text, path);
  OPENSSL_cleanse(text.data(), text.size());  // the plain tokens do not outlive the parse
  return entries;
}

}  // namespace cnnserve::auth
