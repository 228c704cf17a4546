// TLS and mTLS on cnnserve's gRPC port with certificates made by openssl for the test (test_certs.h): the right
// client classifies, plaintext and the wrong certificates are refused, and bad TLS files stop the start (exit 1,
// the file named on stderr) instead of falling back to plaintext.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/test_certs.h"
#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

constexpr auto kRefusedCallTimeout = std::chrono::milliseconds(5'000);
constexpr int kExitStartFailure = 1;
constexpr int kExitUsage = 2;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    certs_ = MakeTestCerts(dir_->path());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::vector<std::string> ServerArgs(bool mtls) {
    std::vector<std::string> args = {"--model-repository", DefaultRepository().string()};
    for (const std::string& flag : ServerTlsFlags(certs_, mtls)) args.push_back(flag);
    return args;
  }

  // Classifies one test image over a fresh connection with `credentials`; the call's status.
  static grpc::Status ClassifyWith(const ServerProcess& server,
                                   std::shared_ptr<grpc::ChannelCredentials> credentials, int* top1 = nullptr,
                                   int* label = nullptr) {
    auto channel = ConnectedChannel(server.address(), std::chrono::seconds(2), std::move(credentials));
    auto stub = v1::Classifier::NewStub(channel);
    const std::vector<LabeledImage> images = LoadImages(".png", 1);
    v1::ClassifyResponse response;
    const grpc::Status status = Classify(*stub, ImageRequest({&images[0]}, 1), &response, kRefusedCallTimeout);
    if (status.ok() && top1 != nullptr && response.results_size() == 1) {
      *top1 = Top1(response.results(0));
      *label = images[0].label;
    }
    return status;
  }

  // cnnserve ARGS... run to its end (a start that must fail).
  static CommandResult RunServer(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {(BinDir() / "cnnserve").string(),
                                     "--address",
                                     "127.0.0.1:0",
                                     "--metrics-address",
                                     "none",
                                     "--model-repository",
                                     DefaultRepository().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {}, std::chrono::seconds(120));
  }

  static TempDir* dir_;
  static TestCerts certs_;
};
TempDir* TlsTest::dir_ = nullptr;
TestCerts TlsTest::certs_;

TEST_F(TlsTest, TlsClientClassifiesAndPlaintextIsRefused) {
  auto server = ServerProcess::Start(ServerArgs(/*mtls=*/false), TlsCredentials(certs_.ca_cert()));
  ASSERT_NE(server, nullptr);
  int top1 = -1;
  int label = -2;
  const grpc::Status ok = ClassifyWith(*server, TlsCredentials(certs_.ca_cert()), &top1, &label);
  ASSERT_TRUE(ok.ok()) << ok.error_code() << ": " << ok.error_message();
  EXPECT_EQ(top1, label);  // the first test image is classified right by lenet5_fashion

  const grpc::Status plaintext = ClassifyWith(*server, grpc::InsecureChannelCredentials());
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE) << plaintext.error_message();
  // A client that trusts another CA does not accept the server's certificate.
  const grpc::Status untrusted = ClassifyWith(*server, TlsCredentials(certs_.other_ca_cert()));
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::UNAVAILABLE) << untrusted.error_message();
  EXPECT_NE(server->Log().find("gRPC security: TLS"), std::string::npos) << server->Log();
}

TEST_F(TlsTest, MtlsNeedsAClientCertificateOfTheRightCa) {
  const auto right = TlsCredentials(certs_.ca_cert(), certs_.client_cert(), certs_.client_key());
  auto server = ServerProcess::Start(ServerArgs(/*mtls=*/true), right);
  ASSERT_NE(server, nullptr);
  int top1 = -1;
  int label = -2;
  const grpc::Status ok = ClassifyWith(*server, right, &top1, &label);
  ASSERT_TRUE(ok.ok()) << ok.error_code() << ": " << ok.error_message();
  EXPECT_EQ(top1, label);

  const grpc::Status no_cert = ClassifyWith(*server, TlsCredentials(certs_.ca_cert()));
  EXPECT_EQ(no_cert.error_code(), grpc::StatusCode::UNAVAILABLE) << no_cert.error_message();
  const grpc::Status wrong_ca = ClassifyWith(
      *server, TlsCredentials(certs_.ca_cert(), certs_.other_client_cert(), certs_.other_client_key()));
  EXPECT_EQ(wrong_ca.error_code(), grpc::StatusCode::UNAVAILABLE) << wrong_ca.error_message();
  const grpc::Status plaintext = ClassifyWith(*server, grpc::InsecureChannelCredentials());
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE) << plaintext.error_message();
  EXPECT_NE(server->Log().find("mTLS"), std::string::npos) << server->Log();
}

// TLS and tokens together, the token sent with gRPC's own per-call credentials (AccessTokenCredentials, which
// gRPC sends only over secure channels as "authorization: Bearer TOKEN").
TEST_F(TlsTest, TokensOverMtls) {
  const std::filesystem::path tokens = dir_->path() / "tokens.txt";
  WriteFileBytes(tokens, "infer-token-over-tls infer\n");
  std::vector<std::string> args = ServerArgs(/*mtls=*/true);
  args.insert(args.end(), {"--auth-token-file", tokens.string()});
  const auto tls = TlsCredentials(certs_.ca_cert(), certs_.client_cert(), certs_.client_key());
  auto server = ServerProcess::Start(args, tls);
  ASSERT_NE(server, nullptr);
  int top1 = -1;
  int label = -2;
  const grpc::Status ok = ClassifyWith(
      *server, grpc::CompositeChannelCredentials(tls, grpc::AccessTokenCredentials("infer-token-over-tls")), &top1,
      &label);
  ASSERT_TRUE(ok.ok()) << ok.error_code() << ": " << ok.error_message();
  EXPECT_EQ(top1, label);
  const grpc::Status no_token = ClassifyWith(*server, tls);
  EXPECT_EQ(no_token.error_code(), grpc::StatusCode::UNAUTHENTICATED) << no_token.error_message();
  const grpc::Status wrong =
      ClassifyWith(*server, grpc::CompositeChannelCredentials(tls, grpc::AccessTokenCredentials("not-the-token")));
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED) << wrong.error_message();
  EXPECT_NE(server->Log().find("(mTLS); token authorization on (1 token(s) from"), std::string::npos)
      << server->Log();
}

// Each bad file stops the start with exit 1 and a message naming the file (and no "listening" line).
TEST_F(TlsTest, BadFilesStopTheStartNamingTheFile) {
  const std::filesystem::path garbage = dir_->path() / "garbage.pem";
  WriteFileBytes(garbage, "this is not a certificate\n");
  const std::filesystem::path broken = dir_->path() / "broken.pem";
  std::string cert = ReadFileBytes(certs_.server_cert());
  cert[cert.size() / 2] = '!';  // not base64: the certificate does not decode
  WriteFileBytes(broken, cert);
  const std::filesystem::path empty = dir_->path() / "empty.pem";
  WriteFileBytes(empty, "");
  const std::string missing = (dir_->path() / "missing.pem").string();
  const std::string cert_file = certs_.server_cert().string();
  const std::string key_file = certs_.server_key().string();
  struct Case {
    std::vector<std::string> flags;
    std::string named;  // the file the message must name
  };
  const std::vector<Case> cases = {
      {{"--tls-cert", missing, "--tls-key", key_file}, missing},
      {{"--tls-cert", cert_file, "--tls-key", missing}, missing},
      {{"--tls-cert", dir_->path().string(), "--tls-key", key_file}, dir_->path().string()},
      {{"--tls-cert", garbage.string(), "--tls-key", key_file}, garbage.string()},
      {{"--tls-cert", broken.string(), "--tls-key", key_file}, broken.string()},
      {{"--tls-cert", empty.string(), "--tls-key", key_file}, empty.string()},
      {{"--tls-cert", cert_file, "--tls-key", garbage.string()}, garbage.string()},
      {{"--tls-cert", cert_file, "--tls-key", certs_.client_key().string()}, certs_.client_key().string()},
      {{"--tls-cert", cert_file, "--tls-key", key_file, "--tls-client-ca", garbage.string()}, garbage.string()},
      {{"--tls-cert", cert_file, "--tls-key", key_file, "--tls-client-ca", missing}, missing},
  };
  for (const Case& c : cases) {
    const CommandResult result = RunServer(c.flags);
    std::string flags;
    for (const std::string& f : c.flags) flags += f + " ";
    EXPECT_EQ(result.exit_code, kExitStartFailure) << flags << "\n" << result.err;
    EXPECT_NE(result.err.find(c.named), std::string::npos) << flags << "\n" << result.err;
    EXPECT_EQ(result.out.find("listening"), std::string::npos) << flags << "\n" << result.out;
  }
}

TEST_F(TlsTest, IncompleteTlsFlagsAreUsageErrors) {
  const std::string cert_file = certs_.server_cert().string();
  const std::string key_file = certs_.server_key().string();
  const std::string ca_file = certs_.ca_cert().string();
  const std::vector<std::vector<std::string>> cases = {
      {"--tls-cert", cert_file},    {"--tls-key", key_file},
      {"--tls-client-ca", ca_file}, {"--tls-cert", cert_file, "--tls-client-ca", ca_file},
      {"--tls-cert", ""},
  };
  for (const std::vector<std::string>& flags : cases) {
    const CommandResult result = RunServer(flags);
    EXPECT_EQ(result.exit_code, kExitUsage) << flags[0] << "\n" << result.err;
    EXPECT_NE(result.err.find("--tls-"), std::string::npos) << result.err;
  }
}

}  // namespace
}  // namespace cnnserve::integration
