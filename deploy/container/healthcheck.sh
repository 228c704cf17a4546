#!/bin/sh
# The image's HEALTHCHECK (installed as /usr/local/bin/cnnserve-healthcheck): exit 0 when the cnnserve of this
# container reports SERVING (grpc.health.v1, open without a token), else 1. It asks 127.0.0.1 on the port of
# $CNNSERVE_ADDRESS (default 8001) and follows the TLS set through the entrypoint's variables:
#   CNNSERVE_TLS_CERT set      -> TLS, verifying the server certificate against $CNNSERVE_TLS_CA (required; the
#                                 certificate's SANs must include 127.0.0.1)
#   CNNSERVE_TLS_CLIENT_CA set -> mTLS: the probe's client certificate $CNNSERVE_PROBE_TLS_CERT and key
#                                 $CNNSERVE_PROBE_TLS_KEY (signed by that CA; required)
# Servers given TLS by flags instead of these variables need their own health command (deploy/README.md).
set -eu
address=${CNNSERVE_ADDRESS:-0.0.0.0:8001}
target="127.0.0.1:${address##*:}"
if [ -z "${CNNSERVE_TLS_CERT:-}" ]; then
  exec cnnserve --health-probe "$target"
fi
if [ -z "${CNNSERVE_TLS_CA:-}" ]; then
  echo "cnnserve-healthcheck: CNNSERVE_TLS_CERT is set: set CNNSERVE_TLS_CA to the CA that signed it" >&2
  exit 1
fi
if [ -z "${CNNSERVE_TLS_CLIENT_CA:-}" ]; then
  exec cnnserve --health-probe "$target" --tls-ca "$CNNSERVE_TLS_CA"
fi
if [ -z "${CNNSERVE_PROBE_TLS_CERT:-}" ] || [ -z "${CNNSERVE_PROBE_TLS_KEY:-}" ]; then
  echo "cnnserve-healthcheck: mTLS (CNNSERVE_TLS_CLIENT_CA) needs CNNSERVE_PROBE_TLS_CERT and" \
    "CNNSERVE_PROBE_TLS_KEY" >&2
  exit 1
fi
exec cnnserve --health-probe "$target" --tls-ca "$CNNSERVE_TLS_CA" \
  --tls-cert "$CNNSERVE_PROBE_TLS_CERT" --tls-key "$CNNSERVE_PROBE_TLS_KEY"
