// LoadTlsFiles with real PEM files made by openssl (tests/integration/make_test_certs.sh): good files, chains,
// and each kind of bad file with the message that names it. (A live TLS server: tests/integration/tls_test.cc.)
#include "server/transport/tls_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/integration/test_certs.h"
#include "tests/integration/test_env.h"

namespace cnnserve {
namespace {

using integration::ReadFileBytes;
using integration::WriteFileBytes;

class TlsFilesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new integration::TempDir();
    certs_ = integration::MakeTestCerts(dir_->path());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static TlsFileOptions Server(const std::filesystem::path& cert, const std::filesystem::path& key) {
    TlsFileOptions options;
    options.cert_file = cert.string();
    options.key_file = key.string();
    return options;
  }
  static std::filesystem::path Write(const std::string& name, const std::string& bytes) {
    WriteFileBytes(dir_->path() / name, bytes);
    return dir_->path() / name;
  }

  static integration::TempDir* dir_;
  static integration::TestCerts certs_;
};
integration::TempDir* TlsFilesTest::dir_ = nullptr;
integration::TestCerts TlsFilesTest::certs_;

TEST_F(TlsFilesTest, GoodFilesAndChains) {
  TlsFileOptions options = Server(certs_.server_cert(), certs_.server_key());
  EXPECT_TRUE(options.enabled());
  EXPECT_FALSE(options.mtls());
  StatusOr<TlsPem> pem = LoadTlsFiles(options);
  ASSERT_TRUE(pem.ok()) << pem.status().ToString();
  EXPECT_EQ(pem->cert_chain, ReadFileBytes(certs_.server_cert()));
  EXPECT_EQ(pem->private_key, ReadFileBytes(certs_.server_key()));
  EXPECT_TRUE(pem->client_ca.empty());
  EXPECT_TRUE(pem->warnings.empty());

  // Leaf then CA: a chain. Client CA file with two CAs.
  options.cert_file =
      Write("chain.pem", ReadFileBytes(certs_.server_cert()) + ReadFileBytes(certs_.ca_cert())).string();
  options.client_ca_file =
      Write("cas.pem", ReadFileBytes(certs_.ca_cert()) + ReadFileBytes(certs_.other_ca_cert())).string();
  EXPECT_TRUE(options.mtls());
  pem = LoadTlsFiles(options);
  ASSERT_TRUE(pem.ok()) << pem.status().ToString();
  EXPECT_EQ(pem->client_ca, ReadFileBytes(dir_->path() / "cas.pem"));
}

TEST_F(TlsFilesTest, BadFilesAreNamedWithWhatIsWrong) {
  const std::string server_pem = ReadFileBytes(certs_.server_cert());
  const std::filesystem::path reversed = Write("reversed.pem", ReadFileBytes(certs_.ca_cert()) + server_pem);
  const std::filesystem::path key_as_cert = certs_.server_key();
  const std::filesystem::path encrypted = dir_->path() / "encrypted.key";
  const integration::CommandResult made =
      integration::RunCommand({"/usr/bin/openssl", "pkey", "-in", certs_.server_key().string(), "-aes256",
                               "-passout", "pass:secret", "-out", encrypted.string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string truncated = server_pem.substr(0, server_pem.size() / 2) + "\n-----END CERTIFICATE-----\n";
  const std::filesystem::path cut = Write("cut.pem", truncated);
  const std::filesystem::path empty = Write("empty.pem", "");
  struct Case {
    TlsFileOptions options;
    std::string message;
  };
  const auto with_ca = [&](const std::filesystem::path& ca) {
    TlsFileOptions o = Server(certs_.server_cert(), certs_.server_key());
    o.client_ca_file = ca.string();
    return o;
  };
  const std::vector<Case> cases = {
      {Server(reversed, certs_.server_key()), "--tls-key " + certs_.server_key().string() +
                                                  ": does not match the certificate of --tls-cert " +
                                                  reversed.string()},
      {Server(certs_.server_cert(), certs_.client_key()), "--tls-key " + certs_.client_key().string() +
                                                              ": does not match the certificate of --tls-cert " +
                                                              certs_.server_cert().string()},
      {Server(key_as_cert, certs_.server_key()),
       "--tls-cert " + key_as_cert.string() + ": holds no PEM certificate (-----BEGIN CERTIFICATE-----)"},
      {Server(certs_.server_cert(), certs_.server_cert()),
       "--tls-key " + certs_.server_cert().string() + ": holds no PEM private key that parses ("},
      {Server(certs_.server_cert(), encrypted),
       "--tls-key " + encrypted.string() + ": is an encrypted key; cnnserve needs an unencrypted PEM key"},
      {Server(cut, certs_.server_key()), "--tls-cert " + cut.string() + ": certificate 1 does not parse ("},
      {Server(empty, certs_.server_key()), "--tls-cert " + empty.string() + ": is empty"},
      {Server(dir_->path(), certs_.server_key()), "--tls-cert " + dir_->path().string() + ": is a directory"},
      {Server(dir_->path() / "nope.pem", certs_.server_key()),
       "--tls-cert " + (dir_->path() / "nope.pem").string() + ": cannot read: No such file or directory"},
      {with_ca(certs_.server_key()),
       "--tls-client-ca " + certs_.server_key().string() + ": holds no PEM certificate"},
      {with_ca(empty), "--tls-client-ca " + empty.string() + ": is empty"},
  };
  for (const Case& c : cases) {
    const StatusOr<TlsPem> pem = LoadTlsFiles(c.options);
    ASSERT_FALSE(pem.ok()) << c.message;
    EXPECT_EQ(pem.status().code(), StatusCode::kFailedPrecondition) << c.message;
    EXPECT_TRUE(pem.status().message().starts_with(c.message))
        << pem.status().message() << "\nwanted " << c.message;
    EXPECT_EQ(pem.status().message().find("BEGIN PRIVATE KEY"), std::string::npos);  // no file contents
  }
}

TEST_F(TlsFilesTest, IncompleteOptionsAreInvalid) {
  TlsFileOptions only_cert;
  only_cert.cert_file = certs_.server_cert().string();
  TlsFileOptions only_ca;
  only_ca.client_ca_file = certs_.ca_cert().string();
  for (const TlsFileOptions& options : {only_cert, only_ca}) {
    EXPECT_TRUE(options.enabled());
    EXPECT_EQ(LoadTlsFiles(options).status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(TlsFileOptions().enabled());
}

}  // namespace
}  // namespace cnnserve
