// The clients' security flags against a live cnnserve with TLS, client certificates (mTLS) and tokens: cnnctl,
// cnnload, tools/python/classify.py and `cnnserve --health-probe` with --tls-ca, --tls-cert/--tls-key, --token and
// CNNSERVE_TOKEN. The right flags work; each missing piece fails with its own clear message (no token:
// UNAUTHENTICATED; a token without the scope: PERMISSION_DENIED naming it; no CA: the certificate check; no client
// certificate or plaintext: no connection); the token never appears in any output. Certificates are made by
// openssl at test time (make_test_certs.sh). The server serves a copy of lenet5_fashion only (a quick start).
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/test_certs.h"
#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

// Tokens of the server's --auth-token-file. Each is long and distinct, so finding it in an output means it leaked.
constexpr char kAllToken[] = "client-test-token-all-6f1d2c";
constexpr char kInferToken[] = "client-test-token-infer-9a7e31";  // infer only: no ListModels, no DescribeModel
constexpr char kWrongToken[] = "client-test-token-unknown-44b0d8";
constexpr char kNoTokenEnv[] = "CNNSERVE_TOKEN=";  // empty: no token, whatever the test runner's environment holds
// cnnload's bounded run.
constexpr char kLoadSeconds[] = "2";

std::string Cnnctl() { return (BinDir() / "cnnctl").string(); }
std::string Cnnload() { return (BinDir() / "cnnload").string(); }
std::string Cnnserve() { return (BinDir() / "cnnserve").string(); }
std::string ClassifyPy() { return (SourceDir() / "tools" / "python" / "classify.py").string(); }

// A repository with only lenet5_fashion (a copy of the default one's).
std::filesystem::path SmallRepository(const std::filesystem::path& dir) {
  const std::filesystem::path repository = dir / "repository";
  std::filesystem::create_directories(repository);
  std::filesystem::copy(DefaultRepository() / kModel, repository / kModel,
                        std::filesystem::copy_options::recursive);
  return repository;
}

void ExpectNoToken(const CommandResult& result) {
  for (const char* token : {kAllToken, kInferToken, kWrongToken}) {
    EXPECT_EQ(result.out.find(token), std::string::npos) << "stdout shows a token:\n" << result.out;
    EXPECT_EQ(result.err.find(token), std::string::npos) << "stderr shows a token:\n" << result.err;
  }
}

class ClientsSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    certs_ = new TestCerts(MakeTestCerts(dir_->path() / "certs"));
    const std::filesystem::path tokens = dir_->path() / "tokens.txt";
    WriteFileBytes(tokens,
                   std::string("# clients_security_test\n") + kAllToken + " all\n" + kInferToken + " infer\n");
    std::vector<std::string> args = {"--model-repository", SmallRepository(dir_->path()).string(),
                                     "--auth-token-file", tokens.string()};
    const std::vector<std::string> tls = ServerTlsFlags(*certs_, /*mtls=*/true);
    args.insert(args.end(), tls.begin(), tls.end());
    server_ =
        ServerProcess::Start(args, TlsCredentials(certs_->ca_cert(), certs_->client_cert(), certs_->client_key()))
            .release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete certs_;
    delete dir_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << "the TLS server did not start"; }

  // --tls-ca, --tls-cert and --tls-key: what the mTLS server needs.
  static std::vector<std::string> MtlsFlags() {
    return {"--tls-ca",  certs_->ca_cert().string(),   "--tls-cert", certs_->client_cert().string(),
            "--tls-key", certs_->client_key().string()};
  }
  // `tool` --server ADDRESS `flags`... `args`...
  static std::vector<std::string> Argv(const std::vector<std::string>& tool, const std::vector<std::string>& flags,
                                       const std::vector<std::string>& args) {
    std::vector<std::string> argv = tool;
    argv.insert(argv.end(), {"--server", server_->address()});
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  static CommandResult RunCnnctl(const std::vector<std::string>& flags, const std::vector<std::string>& args,
                                 const std::vector<std::string>& env = {kNoTokenEnv}) {
    const CommandResult result = RunCommand(Argv({Cnnctl(), "--timeout-s", "20"}, flags, args), env);
    ExpectNoToken(result);
    return result;
  }
  static std::string ImagePath() { return (TestDataDir() / LoadImages(".png", 1)[0].name).string(); }

  static TempDir* dir_;
  static TestCerts* certs_;
  static ServerProcess* server_;
};
TempDir* ClientsSecurityTest::dir_ = nullptr;
TestCerts* ClientsSecurityTest::certs_ = nullptr;
ServerProcess* ClientsSecurityTest::server_ = nullptr;

std::vector<std::string> Plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(ClientsSecurityTest, CnnctlListsAndClassifiesWithCertificatesAndToken) {
  const CommandResult list = RunCnnctl(Plus(MtlsFlags(), {"--token", kAllToken}), {"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find(kModel), std::string::npos) << list.out;

  // The infer scope is enough to classify.
  const CommandResult classify =
      RunCnnctl(Plus(MtlsFlags(), {"--token", kInferToken}), {"classify", "--model", kModel, ImagePath()});
  ASSERT_EQ(classify.exit_code, 0) << classify.err;
  EXPECT_NE(classify.out.find(ImagePath()), std::string::npos) << classify.out;
  EXPECT_NE(classify.out.find("probability"), std::string::npos) << classify.out;
}

TEST_F(ClientsSecurityTest, CnnctlWithoutOrWithWrongTokenIsRefusedByTheServer) {
  const CommandResult none = RunCnnctl(MtlsFlags(), {"list"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("ListModels failed: UNAUTHENTICATED (16)"), std::string::npos) << none.err;

  const CommandResult wrong = RunCnnctl(Plus(MtlsFlags(), {"--token", kWrongToken}), {"list"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("UNAUTHENTICATED"), std::string::npos) << wrong.err;

  const CommandResult scope = RunCnnctl(Plus(MtlsFlags(), {"--token", kInferToken}), {"list"});
  EXPECT_EQ(scope.exit_code, 1);
  EXPECT_NE(scope.err.find("PERMISSION_DENIED"), std::string::npos) << scope.err;
  EXPECT_NE(scope.err.find("metadata"), std::string::npos) << scope.err;

  // Health stays open: no token needed.
  const CommandResult health = RunCnnctl(MtlsFlags(), {"health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");
}

TEST_F(ClientsSecurityTest, CnnctlTakesTheTokenFromTheEnvironmentAndTheFlagWins) {
  const std::string env_all = std::string("CNNSERVE_TOKEN=") + kAllToken;
  const CommandResult from_env = RunCnnctl(MtlsFlags(), {"list"}, {env_all});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;

  const CommandResult flag_wins = RunCnnctl(Plus(MtlsFlags(), {"--token", kWrongToken}), {"list"}, {env_all});
  EXPECT_EQ(flag_wins.exit_code, 1);
  EXPECT_NE(flag_wins.err.find("UNAUTHENTICATED"), std::string::npos) << flag_wins.err;

  const CommandResult flag_over_bad_env = RunCnnctl(Plus(MtlsFlags(), {"--token", kAllToken}), {"list"},
                                                    {std::string("CNNSERVE_TOKEN=") + kWrongToken});
  EXPECT_EQ(flag_over_bad_env.exit_code, 0) << flag_over_bad_env.err;

  // --help shows neither token.
  const CommandResult help = RunCommand({Cnnctl(), "--help"}, {env_all});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--token T"), std::string::npos) << help.out;
  ExpectNoToken(help);
}

TEST_F(ClientsSecurityTest, CnnctlTlsFailuresSayWhy) {
  // Failing connections are waited for --timeout-s (at most 5 s): 2 s is plenty on loopback.
  const std::vector<std::string> token = {"--timeout-s", "2", "--token", kAllToken};
  // The client certificate but no --tls-ca: the system's roots do not know the test CA.
  const CommandResult no_ca = RunCnnctl(
      Plus({"--tls-cert", certs_->client_cert().string(), "--tls-key", certs_->client_key().string()}, token),
      {"list"});
  EXPECT_EQ(no_ca.exit_code, 1);
  EXPECT_NE(no_ca.err.find("cannot connect to " + server_->address()), std::string::npos) << no_ca.err;
  EXPECT_NE(no_ca.err.find("certificate verify failed"), std::string::npos) << no_ca.err;

  // The wrong CA: the same check fails.
  const CommandResult other_ca =
      RunCnnctl(Plus({"--tls-ca", certs_->other_ca_cert().string(), "--tls-cert", certs_->client_cert().string(),
                      "--tls-key", certs_->client_key().string()},
                     token),
                {"list"});
  EXPECT_EQ(other_ca.exit_code, 1);
  EXPECT_NE(other_ca.err.find("certificate verify failed"), std::string::npos) << other_ca.err;

  // No client certificate (mTLS server), and plaintext: no connection.
  for (const std::vector<std::string>& flags : {Plus({"--tls-ca", certs_->ca_cert().string()}, token), token}) {
    const CommandResult result = RunCnnctl(flags, {"list"});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.err.find("cannot connect to " + server_->address()), std::string::npos) << result.err;
  }
}

TEST_F(ClientsSecurityTest, CnnctlBadSecurityFlagsAreUsageErrors) {
  const CommandResult half = RunCnnctl({"--tls-cert", certs_->client_cert().string()}, {"list"});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_NE(half.err.find("--tls-cert needs --tls-key"), std::string::npos) << half.err;

  const std::string missing = (dir_->path() / "missing-ca.pem").string();
  const CommandResult unreadable = RunCnnctl({"--tls-ca", missing}, {"list"});
  EXPECT_EQ(unreadable.exit_code, 2);
  EXPECT_NE(unreadable.err.find("--tls-ca '" + missing + "': cannot open the file"), std::string::npos)
      << unreadable.err;

  const CommandResult spaced = RunCnnctl(MtlsFlags(), {"list"}, {std::string("CNNSERVE_TOKEN=a ") + kAllToken});
  EXPECT_EQ(spaced.exit_code, 2);
  EXPECT_NE(spaced.err.find("CNNSERVE_TOKEN: the token has a character"), std::string::npos) << spaced.err;
}

TEST_F(ClientsSecurityTest, CnnloadRunsABoundedLoadOverMtlsWithAToken) {
  const CommandResult result = RunCommand(
      Argv(
          {Cnnload(), "--quiet", "--json"}, Plus(MtlsFlags(), {"--token", kAllToken}),
          {"--model", kModel, "--synthetic", "--concurrency", "2", "--warmup", "0.5", "--duration", kLoadSeconds}),
      {kNoTokenEnv});
  ExpectNoToken(result);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(result.out, &doc).ok()) << result.out;
  EXPECT_EQ(doc.fields().at("security").string_value(), "mTLS + token");
  const auto& rows = doc.fields().at("rows").list_value();
  ASSERT_EQ(rows.values_size(), 1);
  const auto& row = rows.values(0).struct_value().fields();
  EXPECT_GT(row.at("ok_requests").number_value(), 0);
  EXPECT_EQ(row.at("error_count").number_value(), 0);

  // Without the token the model cannot even be described (--synthetic asks for its input shape).
  const CommandResult no_token = RunCommand(
      Argv({Cnnload(), "--quiet"}, MtlsFlags(), {"--model", kModel, "--synthetic", "--duration", "0.2"}),
      {kNoTokenEnv});
  EXPECT_EQ(no_token.exit_code, 1);
  EXPECT_NE(no_token.err.find("UNAUTHENTICATED"), std::string::npos) << no_token.err;

  // Images with the infer-only token, from the environment: every request is answered.
  const CommandResult images =
      RunCommand(Argv({Cnnload(), "--quiet", "--json"}, MtlsFlags(),
                      {"--model", kModel, "--images", ImagePath(), "--warmup", "0", "--requests", "50"}),
                 {std::string("CNNSERVE_TOKEN=") + kInferToken});
  ExpectNoToken(images);
  ASSERT_EQ(images.exit_code, 0) << images.err;
  EXPECT_NE(images.out.find("\"error_count\": 0"), std::string::npos) << images.out;
}

TEST_F(ClientsSecurityTest, PythonClientClassifiesOverMtlsWithAToken) {
  const std::string stubs = "CNNSERVE_PYTHON_STUBS=" + RequiredEnv("CNNSERVE_PYTHON_STUBS");
  const std::vector<std::string> argv =
      Argv({"/usr/bin/python3", ClassifyPy()}, MtlsFlags(), {"--model", kModel, "--top-k", "1", ImagePath()});
  const CommandResult ok = RunCommand(Plus(argv, {"--token", kInferToken}), {stubs, kNoTokenEnv});
  ExpectNoToken(ok);
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out.rfind("model lenet5_fashion version 1\n", 0), 0u) << ok.out;

  const CommandResult from_env = RunCommand(argv, {stubs, std::string("CNNSERVE_TOKEN=") + kInferToken});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;

  const CommandResult none = RunCommand(argv, {stubs, kNoTokenEnv});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("Classify failed: UNAUTHENTICATED"), std::string::npos) << none.err;

  const CommandResult no_ca =
      RunCommand(Argv({"/usr/bin/python3", ClassifyPy()}, {"--token", kInferToken, "--timeout-s", "2"},
                      {"--model", kModel, ImagePath()}),
                 {stubs});
  EXPECT_EQ(no_ca.exit_code, 1);
  EXPECT_NE(no_ca.err.find("cannot connect to " + server_->address()), std::string::npos) << no_ca.err;

  const CommandResult half =
      RunCommand(Argv({"/usr/bin/python3", ClassifyPy()}, {"--tls-cert", certs_->client_cert().string()},
                      {"--model", kModel, ImagePath()}),
                 {stubs});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_NE(half.err.find("--tls-cert needs --tls-key"), std::string::npos) << half.err;
}

TEST_F(ClientsSecurityTest, HealthProbeOverMtls) {
  std::vector<std::string> probe = {Cnnserve(), "--health-probe", server_->address()};
  const CommandResult serving = RunCommand(Plus(probe, MtlsFlags()));
  EXPECT_EQ(serving.exit_code, 0) << serving.err;
  EXPECT_EQ(serving.out, "SERVING\n");

  // Through "localhost" with the name checked against the certificate's.
  const CommandResult named = RunCommand(Plus({Cnnserve(), "--health-probe", server_->address()},
                                              Plus(MtlsFlags(), {"--tls-server-name", "localhost"})));
  EXPECT_EQ(named.exit_code, 0) << named.err;
  const CommandResult wrong_name = RunCommand(Plus(probe, Plus(MtlsFlags(), {"--tls-server-name", "x.example"})));
  EXPECT_EQ(wrong_name.exit_code, 1);

  const CommandResult plaintext = RunCommand(probe);
  EXPECT_EQ(plaintext.exit_code, 1);
  EXPECT_NE(plaintext.err.find("health probe failed: cannot connect"), std::string::npos) << plaintext.err;
  const CommandResult no_client_cert = RunCommand(Plus(probe, {"--tls-ca", certs_->ca_cert().string()}));
  EXPECT_EQ(no_client_cert.exit_code, 1);

  // The probe's flags are client flags; a server flag is refused in probe mode and the reverse.
  const CommandResult server_flag = RunCommand(Plus(probe, {"--tls-client-ca", certs_->ca_cert().string()}));
  EXPECT_EQ(server_flag.exit_code, 2);
  const CommandResult client_flag = RunCommand({Cnnserve(), "--tls-ca", certs_->ca_cert().string()});
  EXPECT_EQ(client_flag.exit_code, 2);
  EXPECT_NE(client_flag.err.find("go with --health-probe"), std::string::npos) << client_flag.err;
}

// A TLS server without client certificates or tokens: the probe needs only the CA.
TEST(ClientsTlsOnlyTest, HealthProbeAndCnnctlWithTheCaOnly) {
  TempDir dir;
  const TestCerts certs = MakeTestCerts(dir.path() / "certs");
  std::vector<std::string> args = {"--model-repository", SmallRepository(dir.path()).string()};
  const std::vector<std::string> tls = ServerTlsFlags(certs, /*mtls=*/false);
  args.insert(args.end(), tls.begin(), tls.end());
  const std::unique_ptr<ServerProcess> server = ServerProcess::Start(args, TlsCredentials(certs.ca_cert()));
  ASSERT_NE(server, nullptr);
  const std::string ca = certs.ca_cert().string();

  const CommandResult probe = RunCommand({Cnnserve(), "--health-probe", server->address(), "--tls-ca", ca});
  EXPECT_EQ(probe.exit_code, 0) << probe.err;
  EXPECT_EQ(probe.out, "SERVING\n");
  const CommandResult plaintext = RunCommand({Cnnserve(), "--health-probe", server->address()});
  EXPECT_EQ(plaintext.exit_code, 1);

  const CommandResult list =
      RunCommand({Cnnctl(), "--server", server->address(), "--tls-ca", ca, "list"}, {kNoTokenEnv});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find(kModel), std::string::npos) << list.out;
}

}  // namespace
}  // namespace cnnserve::integration
