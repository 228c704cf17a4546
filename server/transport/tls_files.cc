#include "server/transport/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <system_error>
#include <utility>

namespace cnnserve {
namespace {

// PEM files of certificates and keys are a few KiB; anything this large is not one.
constexpr std::streamsize kMaxPemFileBytes = std::streamsize{1} << 20;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

Status FileError(const std::string& flag, const std::string& file, const std::string& what) {
  return FailedPreconditionError(flag + " " + file + ": " + what);
}

// OpenSSL's reason for the last error (a fixed string such as "bad base64 decode"; never the data).
std::string OpenSslReason() {
  const unsigned long error = ERR_peek_last_error();
  const char* reason = error == 0 ? nullptr : ERR_reason_error_string(error);
  return reason == nullptr ? "unknown error" : reason;
}

StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) return FileError(flag, file, "is a directory, not a PEM file");
  std::ifstream in(file, std::ios::binary);
  if (!in) return FileError(flag, file, std::string("cannot read: ") + std::strerror(errno));
  std::string bytes;
  bytes.resize(static_cast<size_t>(kMaxPemFileBytes) + 1);
  in.read(bytes.data(), kMaxPemFileBytes + 1);
  if (in.bad()) return FileError(flag, file, "read error");
  bytes.resize(static_cast<size_t>(in.gcount()));
  if (bytes.empty()) return FileError(flag, file, "is empty");
  if (static_cast<std::streamsize>(bytes.size()) > kMaxPemFileBytes) {
    return FileError(flag, file, "is larger than 1 MiB, not a PEM file");
  }
  return bytes;
}

BioPtr MemoryBio(const std::string& bytes) {
  return BioPtr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

// Every certificate of a PEM file, in order; an error when there is none or one does not parse.
StatusOr<std::vector<X509Ptr>> ParseCertificates(const std::string& flag, const std::string& file,
                                                 const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  if (bio == nullptr) return InternalError("out of memory reading " + file);
  std::vector<X509Ptr> certs;
  ERR_clear_error();
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(cert);
  // Reading stops with "no start line" at the end of the data; any other error is a broken certificate.
  const unsigned long error = ERR_peek_last_error();
  const bool clean_end =
      error == 0 || (ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE);
  if (!clean_end) {
    const std::string reason = OpenSslReason();
    ERR_clear_error();
    return FileError(flag, file,
                     "certificate " + std::to_string(certs.size() + 1) + " does not parse (" + reason + ")");
  }
  ERR_clear_error();
  if (certs.empty()) return FileError(flag, file, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  return certs;
}

// Never asks for a pass phrase: encrypted keys fail to load.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return -1; }

StatusOr<PkeyPtr> ParsePrivateKey(const std::string& flag, const std::string& file, const std::string& pem) {
  if (pem.find("ENCRYPTED") != std::string::npos) {
    return FileError(flag, file,
                     "is an encrypted key; cnnserve needs an unencrypted PEM key (protect the file "
                     "with its permissions instead)");
  }
  BioPtr bio = MemoryBio(pem);
  if (bio == nullptr) return InternalError("out of memory reading " + file);
  ERR_clear_error();
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    const std::string reason = OpenSslReason();
    ERR_clear_error();
    return FileError(flag, file, "holds no PEM private key that parses (" + reason + ")");
  }
  return key;
}

// "expired" / "not yet valid" warnings for `cert`.
void CheckValidity(const std::string& flag, const std::string& file, X509* cert, std::vector<std::string>* out) {
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    out->push_back(flag + " " + file + ": the certificate has expired");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    out->push_back(flag + " " + file + ": the certificate is not valid yet");
  }
}

}  // namespace

StatusOr<TlsPem> LoadTlsFiles(const TlsFileOptions& options) {
  if (options.cert_file.empty() || options.key_file.empty()) {
    return InvalidArgumentError("TLS needs both a certificate (--tls-cert) and its key (--tls-key)");
  }
  TlsPem pem;
  CNN_ASSIGN_OR_RETURN(pem.cert_chain, ReadPemFile("--tls-cert", options.cert_file));
  CNN_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain,
                       ParseCertificates("--tls-cert", options.cert_file, pem.cert_chain));
  CNN_ASSIGN_OR_RETURN(pem.private_key, ReadPemFile("--tls-key", options.key_file));
  CNN_ASSIGN_OR_RETURN(PkeyPtr key, ParsePrivateKey("--tls-key", options.key_file, pem.private_key));
  ERR_clear_error();
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    ERR_clear_error();
    return FileError("--tls-key", options.key_file,
                     "does not match the certificate of --tls-cert " + options.cert_file);
  }
  CheckValidity("--tls-cert", options.cert_file, chain.front().get(), &pem.warnings);
  if (options.mtls()) {
    CNN_ASSIGN_OR_RETURN(pem.client_ca, ReadPemFile("--tls-client-ca", options.client_ca_file));
    CNN_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas,
                         ParseCertificates("--tls-client-ca", options.client_ca_file, pem.client_ca));
    for (const X509Ptr& ca : cas)
      CheckValidity("--tls-client-ca", options.client_ca_file, ca.get(), &pem.warnings);
  }
  return pem;
}

}  // namespace cnnserve
