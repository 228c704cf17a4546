// TLS material of a listening port: the PEM files named by --tls-cert, --tls-key and --tls-client-ca, read and
// checked before any server is built, so that a bad file is a start-up error naming the file instead of a server
// that fails every handshake (or, worse, one that serves plaintext).
//
// Checks: each file is readable and not empty; the certificate file holds one or more PEM certificates (the first
// is the server's, the rest its chain); the key file holds one unencrypted PEM private key (an encrypted key is
// refused: there is no one to type a pass phrase) that matches the first certificate (X509_check_private_key);
// the client CA file holds one or more PEM certificates. A certificate outside its validity period is logged as a
// warning by the caller's choice (see `warnings`), not refused: clocks differ, and the handshake says so anyway.
// Errors: INVALID_ARGUMENT when the options are incomplete (a key without a certificate, a client CA without
// both); FAILED_PRECONDITION naming the file and what is wrong with it. The PEM contents never appear in a
// message. Uses OpenSSL's libcrypto (no gRPC). Thread-safety: pure functions.
#ifndef CNNSERVE_SERVER_TRANSPORT_TLS_FILES_H_
#define CNNSERVE_SERVER_TRANSPORT_TLS_FILES_H_

#include <string>
#include <vector>

#include "engine/common/status.h"

namespace cnnserve {

struct TlsFileOptions {
  // PEM certificate chain of the server (leaf first); empty: no TLS (plaintext).
  std::string cert_file;
  // PEM private key of the first certificate; required with cert_file.
  std::string key_file;
  // PEM CA certificate(s) that client certificates must chain to; empty: clients are not asked for certificates.
  // Setting it requires (and verifies) a client certificate on every connection: mTLS.
  std::string client_ca_file;

  bool enabled() const { return !cert_file.empty() || !key_file.empty() || !client_ca_file.empty(); }
  bool mtls() const { return !client_ca_file.empty(); }
};

// The checked contents of the files.
struct TlsPem {
  std::string cert_chain;
  std::string private_key;
  std::string client_ca;  // empty: no client certificates asked for
  // Things worth a warning that do not stop the start, e.g. "certificate FILE expired on ...".
  std::vector<std::string> warnings;
};

// Reads and checks the files of `options` (which must be enabled()).
StatusOr<TlsPem> LoadTlsFiles(const TlsFileOptions& options);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_TRANSPORT_TLS_FILES_H_
