#!/usr/bin/env bash
# Makes a development PKI and token file for cnnserve with openssl (nothing is downloaded):
#   ca.crt ca.key                 the CA that signs server certificates (clients trust ca.crt: --tls-ca)
#   tls.crt tls.key               the server certificate (--tls-cert/--tls-key); SANs: localhost, 127.0.0.1, ::1,
#                                 cnnserve, nginx, the Kubernetes Service names, and every --dns/--ip given
#   client-ca.crt client-ca.key   the CA that signs client certificates (server: --tls-client-ca, mTLS)
#   client.crt client.key         a client certificate (clients: --tls-cert/--tls-key)
#   probe.crt probe.key           the health probe's client certificate under mTLS (Kubernetes exec probes)
#   tokens                        the server's --auth-token-file: sha256 hashes only, no secret in it
#   client.token                  a bearer token with scopes infer,metadata (clients: --token or CNNSERVE_TOKEN)
#   admin.token                   a bearer token with scope all (statistics, model control)
# Usage: deploy/secrets/make-dev-secrets.sh [OUT_DIR] [--namespace NS] [--dns NAME]... [--ip ADDRESS]... [--force]
#   OUT_DIR defaults to deploy/secrets/dev (git-ignored). Existing files are kept unless --force.
# For development and tests: the CA keys sit beside the certificates. In production keep the CA keys offline (or
# use cert-manager) and give the server only tls.crt, tls.key, ca.crt and client-ca.crt (deploy/README.md).
# Key files are mode 0600; run as root, they are group 10001 (the image's user) and 0640 so that containers of
# deploy/compose.yaml can read them.
set -euo pipefail

OUT=""
NAMESPACE=default
DNS=(localhost cnnserve nginx)
IPS=(127.0.0.1 ::1)
FORCE=0
DAYS_CA=730
DAYS_LEAF=365
IMAGE_GID=10001

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) NAMESPACE=${2:?--namespace needs a value}; shift 2 ;;
    --dns) DNS+=("${2:?--dns needs a name}"); shift 2 ;;
    --ip) IPS+=("${2:?--ip needs an address}"); shift 2 ;;
    --force) FORCE=1; shift ;;
    -h | --help) usage 0 ;;
    -*) echo "make-dev-secrets: unknown flag $1" >&2; usage 2 >&2 ;;
    *) [ -z "$OUT" ] || { echo "make-dev-secrets: one OUT_DIR only" >&2; exit 2; }; OUT=$1; shift ;;
  esac
done
OUT=${OUT:-$(cd "$(dirname "$0")" && pwd)/dev}
for svc in cnnserve cnnserve-headless; do
  DNS+=("$svc.$NAMESPACE" "$svc.$NAMESPACE.svc" "$svc.$NAMESPACE.svc.cluster.local")
done
command -v openssl >/dev/null || { echo "make-dev-secrets: openssl not found (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$OUT"
cd "$OUT"
if [ $FORCE = 0 ] && [ -e ca.crt ]; then
  echo "make-dev-secrets: $OUT already holds secrets (--force replaces them)"
  exit 0
fi
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # name, subject
  key "$1.key"
  openssl req -new -x509 -key "$1.key" -subj "$2" -days $DAYS_CA -sha256 -out "$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
leaf() {  # name, subject, signing CA, extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days $DAYS_LEAF -sha256 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=cnnserve development server CA"
ca client-ca "/CN=cnnserve development client CA"
san=""
for d in "${DNS[@]}"; do san+="DNS:$d,"; done
for i in "${IPS[@]}"; do san+="IP:$i,"; done
leaf tls "/CN=cnnserve" ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=${san%,}"
client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
leaf client "/CN=cnnserve-client" client-ca "$client_ext"
leaf probe "/CN=cnnserve-probe" client-ca "$client_ext"
rm -f ./*.srl

# Tokens: 32 random bytes each; the server's file holds only their SHA-256.
openssl rand -hex 32 >client.token
openssl rand -hex 32 >admin.token
hash() { printf %s "$(cat "$1")" | openssl dgst -sha256 -r | cut -d' ' -f1; }
{
  echo "# cnnserve --auth-token-file: TOKEN SCOPE[,SCOPE...]; sha256:HEX is the SHA-256 of the token."
  echo "# client.token"
  echo "sha256:$(hash client.token) infer,metadata"
  echo "# admin.token"
  echo "sha256:$(hash admin.token) all"
} >tokens

chmod 0644 ./*.crt tokens
chmod 0600 ./*.key ./*.token
if [ "$(id -u)" = 0 ]; then
  chgrp "$IMAGE_GID" tls.key probe.key client.key
  chmod 0640 tls.key probe.key client.key
fi
openssl verify -CAfile ca.crt tls.crt >/dev/null
openssl verify -CAfile client-ca.crt client.crt probe.crt >/dev/null
echo "make-dev-secrets: wrote $(ls | tr '\n' ' ')to $OUT (server SANs: ${san%,})"
