// Certificates for the TLS tests, made by openssl at test time (tests/integration/make_test_certs.sh), and the
// gRPC client credentials that use them.
//
// MakeTestCerts(dir) writes into `dir` (usually a TempDir): a CA, a server certificate for 127.0.0.1 and
// localhost signed by it, a client certificate signed by it, and a second CA with a client certificate of its own
// (which a server trusting only the first CA must refuse). Keys are unencrypted EC P-256, all files PEM; the
// certificates are valid for 2 days. Failures are test failures (ADD_FAILURE) naming the command's output.
#ifndef CNNSERVE_TESTS_INTEGRATION_TEST_CERTS_H_
#define CNNSERVE_TESTS_INTEGRATION_TEST_CERTS_H_

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace cnnserve::integration {

struct TestCerts {
  std::filesystem::path dir;
  std::filesystem::path ca_cert() const { return dir / "ca.pem"; }
  std::filesystem::path server_cert() const { return dir / "server.pem"; }
  std::filesystem::path server_key() const { return dir / "server.key"; }
  std::filesystem::path client_cert() const { return dir / "client.pem"; }
  std::filesystem::path client_key() const { return dir / "client.key"; }
  std::filesystem::path other_ca_cert() const { return dir / "other_ca.pem"; }
  std::filesystem::path other_client_cert() const { return dir / "other_client.pem"; }
  std::filesystem::path other_client_key() const { return dir / "other_client.key"; }
};

// Runs make_test_certs.sh DIR (from the source tree) with a 60 s bound.
TestCerts MakeTestCerts(const std::filesystem::path& dir);

// TLS channel credentials that trust `ca_cert` and, when `client_cert` is not empty, present that client
// certificate with `client_key` (mTLS).
std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(const std::filesystem::path& ca_cert,
                                                         const std::filesystem::path& client_cert = {},
                                                         const std::filesystem::path& client_key = {});

// The cnnserve flags of a TLS server with these certificates: --tls-cert, --tls-key and, with `mtls`,
// --tls-client-ca (the first CA).
std::vector<std::string> ServerTlsFlags(const TestCerts& certs, bool mtls);

}  // namespace cnnserve::integration

#endif  // CNNSERVE_TESTS_INTEGRATION_TEST_CERTS_H_
