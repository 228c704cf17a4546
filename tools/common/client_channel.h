// Client-side security of cnnserve's clients (cnnctl, cnnload, cnnserve --health-probe): one way to turn the
// flags --tls-ca, --tls-cert, --tls-key, --tls-server-name and --token (or the environment variable
// CNNSERVE_TOKEN) into gRPC channels.
//
//   ClientSecurityOptions  the flags, as given (plain data). SetClientSecurityFlag parses one flag,
//                          FinishClientSecurityOptions takes the token from the environment and checks the whole.
//   ClientSecurity         the loaded credentials: TLS (server verified against --tls-ca, or the system roots when
//                          only a client certificate is given; the client certificate presented for mTLS) or
//                          plaintext, and the bearer token. NewChannel makes channels with them.
//
// The token travels as the metadata `authorization: Bearer TOKEN` added by a client interceptor of the channel,
// so it is on every call the channel makes: synchronous, asynchronous (completion queue), callback and generic
// calls alike, over TLS or plaintext (gRPC's call credentials would refuse a plaintext channel, and a per-call
// ClientContext::AddMetadata would be a duty of every call site).
// The token never appears in a message, a description or an error of this library.
//
// Errors: INVALID_ARGUMENT for bad flag combinations or values (naming the flag, never the token's value);
// FAILED_PRECONDITION naming the file for a TLS file that cannot be read, is empty or holds no PEM block.
// Thread-safety: the options and functions are plain data and pure (FinishClientSecurityOptions reads the
// environment); a ClientSecurity is immutable after Create and may be shared by threads.
#ifndef CNNSERVE_TOOLS_COMMON_CLIENT_CHANNEL_H_
#define CNNSERVE_TOOLS_COMMON_CLIENT_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "engine/common/flags.h"
#include "engine/common/status.h"

namespace cnnserve::tools {

// Read when --token is not given; an empty value counts as unset.
inline constexpr char kTokenEnvironmentVariable[] = "CNNSERVE_TOKEN";

// The client security flags, as given on a command line.
struct ClientSecurityOptions {
  std::string tls_ca_file;    // --tls-ca: PEM CA certificate(s) that the server's certificate must chain to
  std::string tls_cert_file;  // --tls-cert: PEM client certificate chain (mTLS); needs tls_key_file
  std::string tls_key_file;   // --tls-key: its unencrypted PEM private key; needs tls_cert_file
  std::string
      tls_server_name;  // --tls-server-name: the name the server's certificate must carry, when the
                        // address does not (e.g. connecting to 127.0.0.1 with a certificate for a DNS name)
  std::string token;    // --token, else $CNNSERVE_TOKEN: sent as `authorization: Bearer TOKEN`

  // Any TLS flag turns TLS on; there is no fallback to plaintext then.
  bool tls() const {
    return !tls_ca_file.empty() || !tls_cert_file.empty() || !tls_key_file.empty() || !tls_server_name.empty();
  }
  bool mtls() const { return !tls_cert_file.empty(); }
};

// The flag names SetClientSecurityFlag knows, in the order of the usage texts.
inline constexpr std::string_view kClientSecurityFlags[] = {"--tls-ca", "--tls-cert", "--tls-key",
                                                            "--tls-server-name", "--token"};

// True when `name` is one of kClientSecurityFlags.
bool IsClientSecurityFlag(std::string_view name);

// Stores `value` of flag `name` (one of kClientSecurityFlags) in `options`. INVALID_ARGUMENT naming the flag when
// the value is empty or `name` is not a security flag.
Status SetClientSecurityFlag(std::string_view name, std::string_view value, ClientSecurityOptions* options);

// Registers the flags of kClientSecurityFlags on `flags`, with their usage text, storing their values in
// `options` (which must outlive the parse); an empty value is an error naming the flag.
void AddClientSecurityFlags(FlagSet* flags, ClientSecurityOptions* options);

// After parsing: takes the token from $CNNSERVE_TOKEN unless --token was given, then checks that --tls-cert and
// --tls-key come together and that the token can travel in an HTTP/2 header (visible ASCII, no spaces).
// INVALID_ARGUMENT naming the flag (or the variable) otherwise; the token's value is never in the message.
Status FinishClientSecurityOptions(ClientSecurityOptions* options);

// What the options amount to, for reports and logs: "plaintext", "TLS" or "mTLS", plus " + token" when a token is
// sent. Never the token itself.
std::string DescribeClientSecurity(const ClientSecurityOptions& options);

// The loaded credentials of a client.
class ClientSecurity {
 public:
  // Reads the TLS files of `options` (after FinishClientSecurityOptions). FAILED_PRECONDITION naming the file
  // when a file cannot be read, is empty or holds no PEM block; INVALID_ARGUMENT for --tls-cert without --tls-key
  // (or the reverse).
  static StatusOr<std::unique_ptr<ClientSecurity>> Create(const ClientSecurityOptions& options);

  // A channel to `address` with these credentials and `args` (plus the TLS server name override, if any). The
  // token, if any, is added to every call by an interceptor. Does not connect.
  std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, grpc::ChannelArguments args) const;

  const std::string& description() const { return description_; }

 private:
  ClientSecurity() = default;

  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::string server_name_;
  std::string authorization_;  // "Bearer TOKEN"; empty: no token
  std::string description_;
};

// Waits until `channel` is connected or `timeout` passes. UNAVAILABLE "cannot connect to ADDRESS within S s: WHY"
// otherwise, where WHY is gRPC's last connection error (a refused connection, a failed TLS handshake, ...), asked
// with one fail-fast call of the channel's health service (an open service; its result is not used otherwise),
// which takes at most 1 s more. Blocks.
Status WaitForChannel(const std::shared_ptr<grpc::Channel>& channel, const std::string& address,
                      std::chrono::milliseconds timeout);

}  // namespace cnnserve::tools

#endif  // CNNSERVE_TOOLS_COMMON_CLIENT_CHANNEL_H_
