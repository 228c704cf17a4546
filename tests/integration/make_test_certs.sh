#!/usr/bin/env bash
# Makes the certificates of the TLS tests with openssl (EC P-256 keys, PEM, valid for 2 days), into DIR:
#   ca.pem ca.key                   the test CA
#   server.pem server.key           server certificate signed by ca: subjectAltName IP:127.0.0.1, DNS:localhost
#   client.pem client.key           client certificate (extendedKeyUsage clientAuth) signed by ca
#   other_ca.pem other_ca.key       a second, unrelated CA
#   other_client.pem other_client.key  a client certificate signed by other_ca (an mTLS server trusting ca refuses it)
# Usage: make_test_certs.sh DIR     (DIR is created; existing files are overwritten). Exit 0 on success.
# Used by tests/integration/test_certs.h (C++) and usable from the Python tests as is.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"

readonly DAYS=2
readonly CURVE=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

# make_ca NAME SUBJECT
make_ca() {
  openssl req -x509 "${CURVE[@]}" -days "$DAYS" -subj "$2" -keyout "$1.key" -out "$1.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# make_leaf NAME SUBJECT CA EXTENSIONS...: a key, a request, and a certificate signed by CA with EXTENSIONS.
make_leaf() {
  local name=$1 subject=$2 ca=$3
  shift 3
  openssl req -new "${CURVE[@]}" -subj "$subject" -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf '%s\n' "$@" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial -days "$DAYS" \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

make_ca ca "/CN=cnnserve test CA"
make_ca other_ca "/CN=cnnserve other test CA"
make_leaf server "/CN=localhost" ca \
  "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost"
make_leaf client "/CN=cnnserve test client" ca \
  "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth"
make_leaf other_client "/CN=cnnserve other test client" other_ca \
  "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth"
rm -f ./*.srl
chmod 600 ./*.key
