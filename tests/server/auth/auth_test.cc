// The authorization layer without any front end: the scope names and the method table, token-file parsing from
// tables of good and bad lines (including the sha256:HEX form, and messages that never repeat a token), and the
// Authorizer's answers for every scope.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "server/auth/authorizer.h"
#include "server/auth/scope.h"
#include "server/auth/token_file.h"

namespace cnnserve::auth {
namespace {

constexpr Scope kAllScopes[] = {Scope::kInfer, Scope::kMetadata, Scope::kStatistics, Scope::kModelControl,
                                Scope::kAll};
// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
constexpr char kAbcSha256[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

std::string Hex(const Sha256Digest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t b : digest) {
    hex += kDigits[b >> 4];
    hex += kDigits[b & 0xf];
  }
  return hex;
}

TEST(ScopeTest, NamesRoundTripAndOnlyExactNamesParse) {
  for (Scope scope : kAllScopes) EXPECT_EQ(ParseScope(ScopeName(scope)), scope);
  EXPECT_EQ(ScopeName(Scope::kModelControl), "model-control");
  for (const char* bad : {"", "Infer", "INFER", "model_control", "modelcontrol", "admin", "infer "}) {
    EXPECT_FALSE(ParseScope(bad).has_value()) << bad;
  }
}

TEST(ScopeTest, AllGrantsEveryScopeAndOthersOnlyThemselves) {
  for (Scope granted : kAllScopes) {
    for (Scope needed : kAllScopes) {
      EXPECT_EQ(Grants(ScopeBit(granted), needed), granted == needed || granted == Scope::kAll)
          << ScopeName(granted) << " for " << ScopeName(needed);
    }
  }
  EXPECT_FALSE(Grants(0, Scope::kInfer));
}

TEST(ScopeTest, MethodTable) {
  struct Row {
    const char* method;
    Access access;
  };
  const Access open{true, Scope::kAll};
  auto needs = [](Scope s) { return Access{false, s}; };
  const std::vector<Row> rows = {
      {"/cnnserve.v1.Classifier/Classify", needs(Scope::kInfer)},
      {"/cnnserve.v1.Classifier/ClassifyStream", needs(Scope::kInfer)},
      {"/cnnserve.v1.Classifier/ListModels", needs(Scope::kMetadata)},
      {"/cnnserve.v1.Classifier/DescribeModel", needs(Scope::kMetadata)},
      {"/inference.GRPCInferenceService/ModelInfer", needs(Scope::kInfer)},
      {"/inference.GRPCInferenceService/ModelStreamInfer", needs(Scope::kInfer)},
      {"/inference.GRPCInferenceService/ServerMetadata", needs(Scope::kMetadata)},
      {"/inference.GRPCInferenceService/ModelMetadata", needs(Scope::kMetadata)},
      {"/inference.GRPCInferenceService/ModelConfig", needs(Scope::kMetadata)},
      {"/inference.GRPCInferenceService/ModelReady", needs(Scope::kMetadata)},
      {"/inference.GRPCInferenceService/RepositoryIndex", needs(Scope::kMetadata)},
      {"/inference.GRPCInferenceService/ModelStatistics", needs(Scope::kStatistics)},
      {"/inference.GRPCInferenceService/RepositoryModelLoad", needs(Scope::kModelControl)},
      {"/inference.GRPCInferenceService/RepositoryModelUnload", needs(Scope::kModelControl)},
      {"/inference.GRPCInferenceService/ServerLive", open},
      {"/inference.GRPCInferenceService/ServerReady", open},
      {"/grpc.health.v1.Health/Check", open},
      {"/grpc.health.v1.Health/Watch", open},
      {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", needs(Scope::kMetadata)},
      {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", needs(Scope::kMetadata)},
      // Without the leading slash too.
      {"inference.GRPCInferenceService/RepositoryModelUnload", needs(Scope::kModelControl)},
  };
  for (const Row& row : rows) {
    ASSERT_TRUE(FindAccess(row.method).has_value()) << row.method;
    EXPECT_EQ(AccessFor(row.method), row.access) << row.method;
  }
  // Unknown methods (and near misses) need `all`.
  for (const char* unknown : {"/cnnserve.v1.Classifier/Unload", "/inference.GRPCInferenceService/ServerLiv",
                              "/grpc.health.v1.Health/List", "", "/", "ServerLive", "/x.Y/ServerLive"}) {
    EXPECT_FALSE(FindAccess(unknown).has_value()) << unknown;
    EXPECT_EQ(AccessFor(unknown), needs(Scope::kAll)) << unknown;
  }
}

TEST(Sha256Test, KnownVectorAndConstantTimeEquality) {
  EXPECT_EQ(Hex(Sha256("abc")), kAbcSha256);
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const Sha256Digest a = Sha256("abc");
  Sha256Digest b = a;
  EXPECT_TRUE(DigestsEqual(a, b));
  for (size_t i : {size_t{0}, size_t{17}, kSha256Bytes - 1}) {
    Sha256Digest c = a;
    c[i] ^= 1;
    EXPECT_FALSE(DigestsEqual(a, c)) << "byte " << i;
  }
}

TEST(TokenFileTest, GoodFiles) {
  const std::string text =
      "# cnnserve tokens\n"
      "\n"
      "reader-0123456789 infer,metadata   # the web front end\n"
      "   ops-token-ABCDEFGH   model-control , statistics\r\n"
      "\t\n"
      "sha256:" +
      std::string(kAbcSha256) +
      " all\n"
      "sha256:" +
      Hex(Sha256("upper")).substr(0, 10) + "ABCDEF" + Hex(Sha256("upper")).substr(16) +
      " infer\n"
      "with#hash infer#no space before '#': part of the token? no: the scope list\n";
  // The last line's scopes are "infer#no space..." -> unknown scope: check the rest first.
  const StatusOr<std::vector<TokenEntry>> bad = ParseTokenFile(text, "tokens.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "tokens.txt:8: scope 1 is unknown (scopes: infer, metadata, statistics, "
            "model-control, all)");

  const std::string good = text.substr(0, text.rfind("with#hash")) + "with#hash infer # comment\n";
  const StatusOr<std::vector<TokenEntry>> entries = ParseTokenFile(good, "tokens.txt");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  ASSERT_EQ(entries->size(), 5u);
  EXPECT_EQ((*entries)[0].line, 3);
  EXPECT_TRUE(DigestsEqual((*entries)[0].digest, Sha256("reader-0123456789")));
  EXPECT_EQ((*entries)[0].scopes, ScopeBit(Scope::kInfer) | ScopeBit(Scope::kMetadata));
  EXPECT_EQ((*entries)[1].line, 4);
  EXPECT_TRUE(DigestsEqual((*entries)[1].digest, Sha256("ops-token-ABCDEFGH")));
  EXPECT_EQ((*entries)[1].scopes, ScopeBit(Scope::kModelControl) | ScopeBit(Scope::kStatistics));
  EXPECT_EQ((*entries)[2].line, 6);
  EXPECT_TRUE(DigestsEqual((*entries)[2].digest, Sha256("abc")));  // sha256:HEX is the digest, not hashed again
  EXPECT_EQ((*entries)[2].scopes, ScopeBit(Scope::kAll));
  // Upper-case hex digits are the same digest.
  Sha256Digest upper = Sha256("upper");
  upper[5] = 0xab;
  upper[6] = 0xcd;
  upper[7] = 0xef;
  EXPECT_TRUE(DigestsEqual((*entries)[3].digest, upper));
  EXPECT_TRUE(DigestsEqual((*entries)[4].digest, Sha256("with#hash")));
}

TEST(TokenFileTest, BadLinesNameTheLineAndNeverTheToken) {
  constexpr char kSecret[] = "s3cr3t-t0ken-value";
  struct Case {
    std::string line;
    std::string message;  // after "f:2: "
  };
  const std::string secret = kSecret;
  const std::vector<Case> cases = {
      {secret, "a token needs its scopes: TOKEN SCOPE[,SCOPE...]"},
      {secret + "   # scopes forgotten", "a token needs its scopes: TOKEN SCOPE[,SCOPE...]"},
      {secret + " admin", "scope 1 is unknown (scopes: infer, metadata, statistics, model-control, all)"},
      {secret + " infer," + secret,
       "scope 2 is unknown (scopes: infer, metadata, statistics, model-control, all)"},
      {"infer " + secret, "scope 1 is unknown (scopes: infer, metadata, statistics, model-control, all)"},
      {secret + " infer,,metadata", "scope 2 is empty"},
      {secret + " infer,", "scope 2 is empty"},
      {secret + " ,infer", "scope 1 is empty"},
      {"sha256:" + std::string(63, 'a') + " infer", "sha256: must be followed by exactly 64 hex digits"},
      {"sha256:" + std::string(65, 'a') + " infer", "sha256: must be followed by exactly 64 hex digits"},
      {"sha256:" + std::string(63, 'a') + "g infer", "sha256: must be followed by exactly 64 hex digits"},
      {"sha256: infer", "sha256: must be followed by exactly 64 hex digits"},
      {secret + "\xc3\xa9 infer", "the token has a character outside visible ASCII"},
      {secret + "\x01 infer", "the token has a character outside visible ASCII"},
      {std::string(4097, 'x') + " infer", "the token is longer than 4096 characters"},
  };
  for (const Case& c : cases) {
    const StatusOr<std::vector<TokenEntry>> parsed = ParseTokenFile("# first line\n" + c.line + "\n", "f");
    ASSERT_FALSE(parsed.ok()) << c.line;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(), "f:2: " + c.message) << c.line;
    EXPECT_EQ(parsed.status().message().find(kSecret), std::string::npos);
  }
}

TEST(TokenFileTest, DuplicatesAndEmptyFiles) {
  const std::string hex = Hex(Sha256("tok"));
  for (const std::string& text : {std::string("tok infer\nother metadata\ntok statistics\n"),
                                  "tok infer\nother metadata\nsha256:" + hex + " statistics\n"}) {
    const StatusOr<std::vector<TokenEntry>> parsed = ParseTokenFile(text, "f");
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().message(), "f:3: the same token as line 1");
  }
  for (const char* empty : {"", "\n\n", "# only comments\n   # and more\n\t\n"}) {
    const StatusOr<std::vector<TokenEntry>> parsed = ParseTokenFile(empty, "f");
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(parsed.status().message().starts_with("f: holds no token")) << parsed.status().message();
  }
  // The last line needs no newline.
  const StatusOr<std::vector<TokenEntry>> last = ParseTokenFile("a infer\nb metadata", "f");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->size(), 2u);
}

TEST(TokenFileTest, LoadTokenFileReadsRealFilesAndNamesBadOnes) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("auth_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path good = dir / "tokens";
  std::ofstream(good) << "abc infer\n";
  const StatusOr<std::vector<TokenEntry>> loaded = LoadTokenFile(good.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(DigestsEqual((*loaded)[0].digest, Sha256("abc")));

  const StatusOr<std::vector<TokenEntry>> missing = LoadTokenFile((dir / "missing").string());
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find((dir / "missing").string()), std::string::npos);
  const StatusOr<std::vector<TokenEntry>> directory = LoadTokenFile(dir.string());
  EXPECT_EQ(directory.status().code(), StatusCode::kFailedPrecondition);
  const std::filesystem::path bad = dir / "bad";
  std::ofstream(bad) << "\n\nabc nope\n";
  const StatusOr<std::vector<TokenEntry>> bad_loaded = LoadTokenFile(bad.string());
  EXPECT_EQ(bad_loaded.status().message(), bad.string() +
                                               ":3: scope 1 is unknown (scopes: infer, metadata, "
                                               "statistics, model-control, all)");
  std::filesystem::remove_all(dir);
}

class AuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string text;
    for (Scope scope : kAllScopes)
      text += "token-" + std::string(ScopeName(scope)) + " " + std::string(ScopeName(scope)) + "\n";
    text += "sha256:" + Hex(Sha256("hashed-token")) + " infer,statistics\n";
    StatusOr<std::vector<TokenEntry>> entries = ParseTokenFile(text, "tokens");
    ASSERT_TRUE(entries.ok()) << entries.status().ToString();
    authorizer_ = Authorizer::FromEntries(std::move(*entries));
  }
  std::unique_ptr<Authorizer> authorizer_;
};

TEST_F(AuthorizerTest, EveryTokenAgainstEveryScope) {
  EXPECT_TRUE(authorizer_->enabled());
  EXPECT_EQ(authorizer_->token_count(), 6u);
  for (Scope granted : kAllScopes) {
    const std::string header = "Bearer token-" + std::string(ScopeName(granted));
    for (Scope needed : kAllScopes) {
      const Status status = authorizer_->Check(header, needed);
      if (granted == needed || granted == Scope::kAll) {
        EXPECT_TRUE(status.ok()) << header << " for " << ScopeName(needed) << ": " << status.ToString();
      } else {
        EXPECT_EQ(status.code(), StatusCode::kPermissionDenied) << header << " for " << ScopeName(needed);
        EXPECT_EQ(status.message(), "token lacks scope \"" + std::string(ScopeName(needed)) + "\"");
      }
    }
  }
  // The token whose file line holds only its digest.
  EXPECT_TRUE(authorizer_->Check("Bearer hashed-token", Scope::kInfer).ok());
  EXPECT_TRUE(authorizer_->Check("Bearer hashed-token", Scope::kStatistics).ok());
  EXPECT_EQ(authorizer_->Check("Bearer hashed-token", Scope::kMetadata).code(), StatusCode::kPermissionDenied);
  // The digest itself is not a token.
  EXPECT_EQ(authorizer_->Check("Bearer sha256:" + Hex(Sha256("hashed-token")), Scope::kInfer).code(),
            StatusCode::kUnauthenticated);
}

TEST_F(AuthorizerTest, MissingMalformedAndUnknownCredentialsAreUnauthenticated) {
  const std::vector<std::optional<std::string>> bad = {
      std::nullopt,
      "",
      "token-all",
      "Bearer",
      "Bearer ",
      "Basic dG9rZW4tYWxsOg==",
      "Bearer token-al",
      "Bearer token-alll",
      "Bearer token-all x",
      "Bearertoken-all",
      "Bearer TOKEN-ALL",
      "Bearer sha256:" + Hex(Sha256("token-all")),
  };
  for (const auto& header : bad) {
    const Status status = authorizer_->Check(header, Scope::kInfer);
    EXPECT_EQ(status.code(), StatusCode::kUnauthenticated) << (header ? *header : "(none)");
    EXPECT_NE(status.message().find("authorization: Bearer TOKEN"), std::string::npos) << status.message();
    EXPECT_EQ(status.message().find("token-al"), std::string::npos) << status.message();
  }
  // The scheme is case-insensitive; spaces around the token are allowed.
  for (const char* good : {"Bearer token-all", "bearer token-all", "BEARER  token-all", "Bearer token-all  "}) {
    EXPECT_TRUE(authorizer_->Check(good, Scope::kModelControl).ok()) << good;
  }
}

TEST_F(AuthorizerTest, CheckMethodUsesTheTableAndOpenMethodsNeedNothing) {
  EXPECT_TRUE(authorizer_->CheckMethod(std::nullopt, "/grpc.health.v1.Health/Check").ok());
  EXPECT_TRUE(authorizer_->CheckMethod("Bearer wrong", "/inference.GRPCInferenceService/ServerReady").ok());
  EXPECT_EQ(authorizer_->CheckMethod(std::nullopt, "/inference.GRPCInferenceService/ModelInfer").code(),
            StatusCode::kUnauthenticated);
  const Status denied =
      authorizer_->CheckMethod("Bearer token-infer", "/inference.GRPCInferenceService/RepositoryModelUnload");
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(), "token lacks scope \"model-control\"");
  EXPECT_TRUE(authorizer_->CheckMethod("Bearer token-infer", "/inference.GRPCInferenceService/ModelInfer").ok());
  // A method the table does not know needs `all`.
  EXPECT_EQ(authorizer_->CheckMethod("Bearer token-metadata", "/cnnserve.v1.Classifier/Future").code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(authorizer_->CheckMethod("Bearer token-all", "/cnnserve.v1.Classifier/Future").ok());
}

TEST(AuthorizerOffTest, NoTokenFileAllowsEverything) {
  StatusOr<std::unique_ptr<Authorizer>> off = Authorizer::Create(AuthorizerOptions{});
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE((*off)->enabled());
  EXPECT_EQ((*off)->token_count(), 0u);
  for (Scope needed : kAllScopes) EXPECT_TRUE((*off)->Check(std::nullopt, needed).ok());
  EXPECT_TRUE((*off)->CheckMethod("Bearer anything", "/x.Y/Z").ok());

  AuthorizerOptions missing;
  missing.token_file = "/nonexistent/tokens";
  const StatusOr<std::unique_ptr<Authorizer>> failed = Authorizer::Create(missing);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("/nonexistent/tokens"), std::string::npos);
}

}  // namespace
}  // namespace cnnserve::auth
