#include "tests/integration/test_certs.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/test_env.h"

namespace cnnserve::integration {

TestCerts MakeTestCerts(const std::filesystem::path& dir) {
  const std::filesystem::path script = SourceDir() / "tests" / "integration" / "make_test_certs.sh";
  const CommandResult result =
      RunCommand({"/bin/bash", script.string(), dir.string()}, {}, std::chrono::seconds(60));
  EXPECT_EQ(result.exit_code, 0) << script << " failed:\n" << result.out << result.err;
  TestCerts certs;
  certs.dir = dir;
  return certs;
}

std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(const std::filesystem::path& ca_cert,
                                                         const std::filesystem::path& client_cert,
                                                         const std::filesystem::path& client_key) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFileBytes(ca_cert);
  if (!client_cert.empty()) {
    options.pem_cert_chain = ReadFileBytes(client_cert);
    options.pem_private_key = ReadFileBytes(client_key);
  }
  return grpc::SslCredentials(options);
}

std::vector<std::string> ServerTlsFlags(const TestCerts& certs, bool mtls) {
  std::vector<std::string> flags = {"--tls-cert", certs.server_cert().string(), "--tls-key",
                                    certs.server_key().string()};
  if (mtls) flags.insert(flags.end(), {"--tls-client-ca", certs.ca_cert().string()});
  return flags;
}

}  // namespace cnnserve::integration
