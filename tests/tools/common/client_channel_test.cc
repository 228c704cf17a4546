// tools/common/client_channel: the client security flags (parsing, CNNSERVE_TOKEN, the checks), loading the TLS
// files (missing, empty, not PEM, certificates made by openssl), and what a channel really sends: a gRPC server in
// this process (plaintext, TLS, mTLS) answers each call with the `authorization` metadata it received, for
// completion-queue and callback calls, the two kinds cnnload makes (cnnctl's blocking calls are checked against
// cnnserve in tests/integration/clients_security_test.cc).
#include "tools/common/client_channel.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/integration/test_certs.h"
#include "tests/integration/test_env.h"

namespace cnnserve::tools {
namespace {

using ::cnnserve::integration::MakeTestCerts;
using ::cnnserve::integration::ReadFileBytes;
using ::cnnserve::integration::TempDir;
using ::cnnserve::integration::TestCerts;
using ::cnnserve::integration::WriteFileBytes;

constexpr char kEchoMethod[] = "/test.Echo/Authorization";
constexpr char kSecret[] = "s3cr3t-t0ken";

// Sets or clears CNNSERVE_TOKEN for one test and restores it afterwards.
class ScopedTokenEnv {
 public:
  explicit ScopedTokenEnv(const char* value) {
    if (const char* old = getenv(kTokenEnvironmentVariable)) saved_ = old;
    had_ = getenv(kTokenEnvironmentVariable) != nullptr;
    if (value != nullptr) {
      setenv(kTokenEnvironmentVariable, value, 1);
    } else {
      unsetenv(kTokenEnvironmentVariable);
    }
  }
  ~ScopedTokenEnv() {
    if (had_) {
      setenv(kTokenEnvironmentVariable, saved_.c_str(), 1);
    } else {
      unsetenv(kTokenEnvironmentVariable);
    }
  }

 private:
  bool had_ = false;
  std::string saved_;
};

ClientSecurityOptions Parse(const std::vector<std::pair<std::string, std::string>>& flags, Status* status) {
  ClientSecurityOptions options;
  for (const auto& [name, value] : flags) {
    *status = SetClientSecurityFlag(name, value, &options);
    if (!status->ok()) return options;
  }
  *status = FinishClientSecurityOptions(&options);
  return options;
}

TEST(ClientSecurityFlagsTest, EveryFlagIsStored) {
  ScopedTokenEnv env(nullptr);
  Status status;
  const ClientSecurityOptions o = Parse({{"--tls-ca", "ca.pem"},
                                         {"--tls-cert", "c.pem"},
                                         {"--tls-key", "c.key"},
                                         {"--tls-server-name", "cnnserve.example"},
                                         {"--token", kSecret}},
                                        &status);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(o.tls_ca_file, "ca.pem");
  EXPECT_EQ(o.tls_cert_file, "c.pem");
  EXPECT_EQ(o.tls_key_file, "c.key");
  EXPECT_EQ(o.tls_server_name, "cnnserve.example");
  EXPECT_EQ(o.token, kSecret);
  EXPECT_TRUE(o.tls());
  EXPECT_TRUE(o.mtls());
  for (const std::string_view name : kClientSecurityFlags) EXPECT_TRUE(IsClientSecurityFlag(name)) << name;
  EXPECT_FALSE(IsClientSecurityFlag("--tls-client-ca"));
  EXPECT_FALSE(IsClientSecurityFlag("--server"));
}

TEST(ClientSecurityFlagsTest, EmptyValuesAndUnknownNamesAreErrorsNamingTheFlag) {
  ClientSecurityOptions options;
  for (const std::string_view name : kClientSecurityFlags) {
    const Status status = SetClientSecurityFlag(name, "", &options);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(status.message().find(std::string(name) + ": must not be empty"), std::string::npos)
        << status.message();
  }
  EXPECT_EQ(SetClientSecurityFlag("--tls-client-ca", "x", &options).code(), StatusCode::kInvalidArgument);
}

TEST(ClientSecurityFlagsTest, CertificateAndKeyGoTogether) {
  ScopedTokenEnv env(nullptr);
  Status status;
  Parse({{"--tls-cert", "c.pem"}}, &status);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "--tls-cert needs --tls-key (its private key)");
  Parse({{"--tls-ca", "ca.pem"}, {"--tls-key", "c.key"}}, &status);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "--tls-key needs --tls-cert (the client certificate)");
}

TEST(ClientSecurityFlagsTest, TokenComesFromTheEnvironmentUnlessTheFlagIsGiven) {
  Status status;
  {
    ScopedTokenEnv env("from-env");
    EXPECT_EQ(Parse({}, &status).token, "from-env");
    EXPECT_TRUE(status.ok());
    EXPECT_EQ(Parse({{"--token", "from-flag"}}, &status).token, "from-flag");
    EXPECT_TRUE(status.ok());
  }
  {
    ScopedTokenEnv env("");  // empty: no token
    EXPECT_EQ(Parse({}, &status).token, "");
    EXPECT_TRUE(status.ok());
  }
  {
    ScopedTokenEnv env(nullptr);
    EXPECT_EQ(Parse({}, &status).token, "");
    EXPECT_TRUE(status.ok());
  }
}

TEST(ClientSecurityFlagsTest, TokenThatCannotBeAHeaderIsRefusedWithoutShowingIt) {
  Status status;
  {
    ScopedTokenEnv env(nullptr);
    Parse({{"--token", "ab cd-secret"}}, &status);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("--token: the token has a character"), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("position 3"), std::string::npos) << status.message();
    EXPECT_EQ(status.message().find("secret"), std::string::npos) << status.message();
  }
  {
    ScopedTokenEnv env("line\nsecret");
    Parse({}, &status);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("CNNSERVE_TOKEN: the token has a character"), std::string::npos)
        << status.message();
    EXPECT_EQ(status.message().find("secret"), std::string::npos) << status.message();
  }
}

TEST(ClientSecurityFlagsTest, DescriptionNamesTheModeNeverTheToken) {
  ClientSecurityOptions o;
  EXPECT_EQ(DescribeClientSecurity(o), "plaintext");
  o.token = kSecret;
  EXPECT_EQ(DescribeClientSecurity(o), "plaintext + token");
  o.tls_ca_file = "ca.pem";
  EXPECT_EQ(DescribeClientSecurity(o), "TLS + token");
  o.tls_cert_file = "c.pem";
  o.tls_key_file = "c.key";
  EXPECT_EQ(DescribeClientSecurity(o), "mTLS + token");
  o.token.clear();
  EXPECT_EQ(DescribeClientSecurity(o), "mTLS");
  o = ClientSecurityOptions();
  o.tls_server_name = "cnnserve.example";  // a TLS flag on its own: TLS with the system's roots
  EXPECT_EQ(DescribeClientSecurity(o), "TLS");
}

class ClientSecurityFilesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    certs_ = new TestCerts(MakeTestCerts(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete certs_;
    delete dir_;
  }
  static ClientSecurityOptions MtlsOptions() {
    ClientSecurityOptions o;
    o.tls_ca_file = certs_->ca_cert().string();
    o.tls_cert_file = certs_->client_cert().string();
    o.tls_key_file = certs_->client_key().string();
    return o;
  }
  static TempDir* dir_;
  static TestCerts* certs_;
};
TempDir* ClientSecurityFilesTest::dir_ = nullptr;
TestCerts* ClientSecurityFilesTest::certs_ = nullptr;

TEST_F(ClientSecurityFilesTest, CertificatesMadeByOpensslLoad) {
  const StatusOr<std::unique_ptr<ClientSecurity>> security = ClientSecurity::Create(MtlsOptions());
  ASSERT_TRUE(security.ok()) << security.status().ToString();
  EXPECT_EQ((*security)->description(), "mTLS");
}

TEST_F(ClientSecurityFilesTest, UnusableFilesAreErrorsNamingFlagAndFile) {
  const std::filesystem::path empty = dir_->path() / "empty.pem";
  const std::filesystem::path text = dir_->path() / "text.pem";
  WriteFileBytes(empty, "");
  WriteFileBytes(text, "not a certificate\n");
  const std::filesystem::path missing = dir_->path() / "missing.pem";
  struct Case {
    std::string ClientSecurityOptions::*field;
    std::string flag;
    std::filesystem::path path;
    std::string why;
  };
  const Case cases[] = {
      {&ClientSecurityOptions::tls_ca_file, "--tls-ca", missing, "cannot open the file"},
      {&ClientSecurityOptions::tls_cert_file, "--tls-cert", empty, "the file is empty"},
      {&ClientSecurityOptions::tls_key_file, "--tls-key", text, "no PEM block"},
      {&ClientSecurityOptions::tls_ca_file, "--tls-ca", dir_->path(), "cannot"},  // a directory
  };
  for (const Case& c : cases) {
    ClientSecurityOptions o = MtlsOptions();
    o.*c.field = c.path.string();
    const StatusOr<std::unique_ptr<ClientSecurity>> security = ClientSecurity::Create(o);
    ASSERT_FALSE(security.ok()) << c.flag << " " << c.path;
    EXPECT_EQ(security.status().code(), StatusCode::kFailedPrecondition);
    const std::string& message = security.status().message();
    EXPECT_NE(message.find(c.flag + " '" + c.path.string() + "'"), std::string::npos) << message;
    EXPECT_NE(message.find(c.why), std::string::npos) << message;
  }
}

TEST_F(ClientSecurityFilesTest, CreateRefusesHalfAKeyPair) {
  ClientSecurityOptions o = MtlsOptions();
  o.tls_key_file.clear();
  EXPECT_EQ(ClientSecurity::Create(o).status().code(), StatusCode::kInvalidArgument);
}

// A gRPC server that answers every call with the `authorization` values it received, joined by "|", or
// "<none>". Plaintext, TLS or mTLS with the test certificates.
class EchoServer {
 public:
  enum class Mode { kPlaintext, kTls, kMtls };
  EchoServer(Mode mode, const TestCerts& certs) {
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (mode != Mode::kPlaintext) {
      grpc::SslServerCredentialsOptions ssl(mode == Mode::kMtls
                                                ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      ssl.pem_key_cert_pairs.push_back({ReadFileBytes(certs.server_key()), ReadFileBytes(certs.server_cert())});
      if (mode == Mode::kMtls) ssl.pem_root_certs = ReadFileBytes(certs.ca_cert());
      credentials = grpc::SslServerCredentials(ssl);
    }
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
    builder.RegisterCallbackGenericService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~EchoServer() { server_->Shutdown(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  class Reactor final : public grpc::ServerGenericBidiReactor {
   public:
    explicit Reactor(grpc::GenericCallbackServerContext* context) {
      std::string values;
      const auto [begin, end] = context->client_metadata().equal_range("authorization");
      for (auto it = begin; it != end; ++it) {
        values += (values.empty() ? "" : "|") + std::string(it->second.data(), it->second.size());
      }
      if (values.empty()) values = "<none>";
      grpc::Slice slice(values);
      response_ = grpc::ByteBuffer(&slice, 1);
      StartRead(&request_);
    }
    void OnReadDone(bool /*ok*/) override {
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    }
    void OnDone() override { delete this; }

   private:
    grpc::ByteBuffer request_;
    grpc::ByteBuffer response_;
  };
  class Service final : public grpc::CallbackGenericService {
    grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* context) override {
      return new Reactor(context);
    }
  };

  Service service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A one-byte request (an empty ByteBuffer is no message at all to gRPC's callback API).
grpc::ByteBuffer Request() {
  grpc::Slice slice(std::string("?"));
  return grpc::ByteBuffer(&slice, 1);
}

std::string Text(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return "<bad buffer>";
  std::string text;
  for (const grpc::Slice& s : slices) text.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return text;
}

// One completion-queue call (cnnload's closed and open loops); the reply, or "error: ..." .
std::string CompletionQueueCall(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  grpc::ByteBuffer response;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(&context, kEchoMethod, Request(), &cq);
  call->StartCall();
  call->Finish(&response, &status, &status);
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status.ok() ? Text(response) : "error: " + status.error_message();
}

// One callback call.
std::string CallbackCall(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::ByteBuffer request = Request();
  grpc::ByteBuffer response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status result;
  stub.UnaryCall(&context, kEchoMethod, grpc::StubOptions(), &request, &response, [&](grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    result = std::move(status);
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return result.ok() ? Text(response) : "error: " + result.error_message();
}

struct EchoCase {
  EchoServer::Mode mode;
  bool client_certificate;
  const char* token;  // nullptr: none
  const char* expected;
};

TEST_F(ClientSecurityFilesTest, EveryCallCarriesTheTokenOnceOverPlaintextTlsAndMtls) {
  const EchoCase cases[] = {
      {EchoServer::Mode::kPlaintext, false, nullptr, "<none>"},
      {EchoServer::Mode::kPlaintext, false, kSecret, "Bearer s3cr3t-t0ken"},
      {EchoServer::Mode::kTls, false, kSecret, "Bearer s3cr3t-t0ken"},
      {EchoServer::Mode::kTls, false, nullptr, "<none>"},
      {EchoServer::Mode::kMtls, true, kSecret, "Bearer s3cr3t-t0ken"},
  };
  for (const EchoCase& c : cases) {
    SCOPED_TRACE(std::string("mode ") + std::to_string(static_cast<int>(c.mode)) + (c.token ? " token" : ""));
    EchoServer server(c.mode, *certs_);
    ClientSecurityOptions o;
    if (c.mode != EchoServer::Mode::kPlaintext) o.tls_ca_file = certs_->ca_cert().string();
    if (c.client_certificate) {
      o.tls_cert_file = certs_->client_cert().string();
      o.tls_key_file = certs_->client_key().string();
    }
    if (c.token != nullptr) o.token = c.token;
    const StatusOr<std::unique_ptr<ClientSecurity>> security = ClientSecurity::Create(o);
    ASSERT_TRUE(security.ok()) << security.status().ToString();
    const std::shared_ptr<grpc::Channel> channel = (*security)->NewChannel(server.address(), {});
    ASSERT_TRUE(WaitForChannel(channel, server.address(), std::chrono::seconds(10)).ok());
    for (int i = 0; i < 2; ++i) {  // a second call on the same channel carries it too
      EXPECT_EQ(CompletionQueueCall(channel), c.expected);
      EXPECT_EQ(CallbackCall(channel), c.expected);
    }
  }
}

TEST_F(ClientSecurityFilesTest, WaitForChannelSaysWhyATlsConnectionFails) {
  // mTLS server; the client trusts the other CA: the server's certificate fails verification.
  EchoServer server(EchoServer::Mode::kMtls, *certs_);
  ClientSecurityOptions o = MtlsOptions();
  o.tls_ca_file = certs_->other_ca_cert().string();
  const StatusOr<std::unique_ptr<ClientSecurity>> security = ClientSecurity::Create(o);
  ASSERT_TRUE(security.ok());
  const Status status =
      WaitForChannel((*security)->NewChannel(server.address(), {}), server.address(), std::chrono::seconds(1));
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("cannot connect to " + server.address() + " within 1 s"), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("certificate verify failed"), std::string::npos) << status.message();
}

TEST_F(ClientSecurityFilesTest, ServerNameOverrideChecksTheNameInTheCertificate) {
  EchoServer server(EchoServer::Mode::kTls, *certs_);
  ClientSecurityOptions o;
  o.tls_ca_file = certs_->ca_cert().string();
  o.tls_server_name = "localhost";  // in the certificate
  StatusOr<std::unique_ptr<ClientSecurity>> security = ClientSecurity::Create(o);
  ASSERT_TRUE(security.ok());
  EXPECT_EQ(CompletionQueueCall((*security)->NewChannel(server.address(), {})), "<none>");

  o.tls_server_name = "elsewhere.example";  // not in it
  security = ClientSecurity::Create(o);
  ASSERT_TRUE(security.ok());
  const Status status =
      WaitForChannel((*security)->NewChannel(server.address(), {}), server.address(), std::chrono::seconds(1));
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("elsewhere.example"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace cnnserve::tools
