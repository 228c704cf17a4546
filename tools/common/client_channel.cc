#include "tools/common/client_channel.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/client_interceptor.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <utility>
#include <vector>

#include "engine/common/units.h"

namespace cnnserve::tools {
namespace {

constexpr char kAuthorizationKey[] = "authorization";
constexpr char kBearerPrefix[] = "Bearer ";
constexpr char kPemBegin[] = "-----BEGIN ";
// Larger "PEM files" are not certificates or keys (a CA bundle is a few hundred KiB).
constexpr std::streamsize kMaxPemFileBytes = 16 * kBytesPerMiB;
// The open, always-present method asked when a connection fails, to learn why.
constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";
constexpr auto kFailureReasonTimeout = std::chrono::seconds(1);

// Adds `authorization: Bearer TOKEN` to the initial metadata of one call.
class BearerTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string* authorization) : authorization_(authorization) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kAuthorizationKey, *authorization_);
    }
    methods->Proceed();
  }

 private:
  const std::string* authorization_;  // owned by the factory, which the channel keeps alive
};

class BearerTokenInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(std::string authorization) : authorization_(std::move(authorization)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerTokenInterceptor(&authorization_);
  }

 private:
  const std::string authorization_;
};

// The contents of PEM file `path` given as `flag`; FAILED_PRECONDITION naming both when it is unusable.
StatusOr<std::string> ReadPemFile(std::string_view flag, const std::string& path) {
  const std::string what = std::string(flag) + " '" + path + "'";
  std::ifstream in(path, std::ios::binary);
  if (!in) return FailedPreconditionError(what + ": cannot open the file");
  std::string contents;
  char buffer[1 << 14];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    contents.append(buffer, static_cast<size_t>(in.gcount()));
    if (static_cast<std::streamsize>(contents.size()) > kMaxPemFileBytes) {
      return FailedPreconditionError(what + ": larger than " + std::to_string(kMaxPemFileBytes >> 20) +
                                     " MiB, not a PEM file");
    }
  }
  if (in.bad()) return FailedPreconditionError(what + ": cannot read the file");
  if (contents.empty()) return FailedPreconditionError(what + ": the file is empty");
  if (contents.find(kPemBegin) == std::string::npos) {
    return FailedPreconditionError(what + ": no PEM block (-----BEGIN ...) in the file");
  }
  return contents;
}

// A token goes into an HTTP/2 header after "Bearer ": visible ASCII only (no spaces, no control characters).
Status CheckToken(std::string_view token, std::string_view source) {
  for (size_t i = 0; i < token.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(token[i]);
    if (c <= ' ' || c > '~') {
      return InvalidArgumentError(std::string(source) + ": the token has a character that cannot be sent in a " +
                                  "header (position " + std::to_string(i + 1) +
                                  "; allowed: visible ASCII, no spaces)");
    }
  }
  return OkStatus();
}

}  // namespace

bool IsClientSecurityFlag(std::string_view name) {
  return std::find(std::begin(kClientSecurityFlags), std::end(kClientSecurityFlags), name) !=
         std::end(kClientSecurityFlags);
}

Status SetClientSecurityFlag(std::string_view name, std::string_view value, ClientSecurityOptions* options) {
  if (!IsClientSecurityFlag(name)) {
    return InvalidArgumentError(std::string(name) + " is not a client security flag");
  }
  if (value.empty()) return InvalidArgumentError(std::string(name) + ": must not be empty");
  if (name == "--tls-ca") {
    options->tls_ca_file = std::string(value);
  } else if (name == "--tls-cert") {
    options->tls_cert_file = std::string(value);
  } else if (name == "--tls-key") {
    options->tls_key_file = std::string(value);
  } else if (name == "--tls-server-name") {
    options->tls_server_name = std::string(value);
  } else {
    options->token = std::string(value);
  }
  return OkStatus();
}

void AddClientSecurityFlags(FlagSet* flags, ClientSecurityOptions* options) {
  static constexpr std::string_view kValueNames[] = {"FILE", "FILE", "FILE", "NAME", "T"};
  static constexpr std::string_view kHelp[] = {
      "verify the server's certificate against this PEM CA (default: the system's roots)",
      "present this PEM client certificate (servers with --tls-client-ca); needs --tls-key",
      "the unencrypted PEM private key of --tls-cert",
      "the name the server's certificate must carry when it is not the one in the address",
      "send 'authorization: Bearer T' on every call (servers with --auth-token-file);\n"
      "default: the environment variable CNNSERVE_TOKEN (never printed)"};
  static_assert(std::size(kValueNames) == std::size(kClientSecurityFlags));
  for (size_t i = 0; i < std::size(kClientSecurityFlags); ++i) {
    const std::string_view name = kClientSecurityFlags[i];
    flags->Value(std::string(name), std::string(kValueNames[i]), std::string(kHelp[i]),
                 [name, options](std::string_view value) {
                   if (value.empty()) return InvalidArgumentError("must not be empty");
                   return SetClientSecurityFlag(name, value, options);
                 });
  }
}

Status FinishClientSecurityOptions(ClientSecurityOptions* options) {
  std::string_view token_source = "--token";
  if (options->token.empty()) {
    const char* env = std::getenv(kTokenEnvironmentVariable);
    if (env != nullptr) options->token = env;
    token_source = kTokenEnvironmentVariable;
  }
  if (options->tls_cert_file.empty() != options->tls_key_file.empty()) {
    return InvalidArgumentError(options->tls_cert_file.empty()
                                    ? "--tls-key needs --tls-cert (the client certificate)"
                                    : "--tls-cert needs --tls-key (its private key)");
  }
  return CheckToken(options->token, token_source);
}

std::string DescribeClientSecurity(const ClientSecurityOptions& options) {
  std::string text = options.mtls() ? "mTLS" : (options.tls() ? "TLS" : "plaintext");
  if (!options.token.empty()) text += " + token";
  return text;
}

StatusOr<std::unique_ptr<ClientSecurity>> ClientSecurity::Create(const ClientSecurityOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  CNN_RETURN_IF_ERROR(CheckToken(options.token, "--token"));
  std::unique_ptr<ClientSecurity> security(new ClientSecurity());
  if (options.tls()) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      CNN_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPemFile("--tls-ca", options.tls_ca_file));
    }
    if (options.mtls()) {
      CNN_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadPemFile("--tls-cert", options.tls_cert_file));
      CNN_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadPemFile("--tls-key", options.tls_key_file));
    }
    security->credentials_ = grpc::SslCredentials(ssl);
    security->server_name_ = options.tls_server_name;
  } else {
    security->credentials_ = grpc::InsecureChannelCredentials();
  }
  if (!options.token.empty()) security->authorization_ = kBearerPrefix + options.token;
  security->description_ = DescribeClientSecurity(options);
  return security;
}

std::shared_ptr<grpc::Channel> ClientSecurity::NewChannel(const std::string& address,
                                                          grpc::ChannelArguments args) const {
  if (!server_name_.empty()) args.SetSslTargetNameOverride(server_name_);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!authorization_.empty()) {
    interceptors.push_back(std::make_unique<BearerTokenInterceptorFactory>(authorization_));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, credentials_, args,
                                                                 std::move(interceptors));
}

Status WaitForChannel(const std::shared_ptr<grpc::Channel>& channel, const std::string& address,
                      std::chrono::milliseconds timeout) {
  if (channel->WaitForConnected(std::chrono::system_clock::now() + timeout)) return OkStatus();
  // Why: a fail-fast call reports the channel's last connection error (refused, TLS handshake failed, ...).
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_wait_for_ready(false);
  context.set_deadline(std::chrono::system_clock::now() + kFailureReasonTimeout);
  grpc::CompletionQueue cq;
  grpc::ByteBuffer request;  // an empty HealthCheckRequest: the overall health
  grpc::ByteBuffer response;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(&context, kHealthCheckMethod, request, &cq);
  call->StartCall();
  call->Finish(&response, &status, /*tag=*/&status);
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%g", std::chrono::duration<double>(timeout).count());
  std::string message = "cannot connect to " + address + " within " + seconds + " s";
  if (!status.ok() && !status.error_message().empty()) message += ": " + status.error_message();
  return UnavailableError(std::move(message));
}

}  // namespace cnnserve::tools
