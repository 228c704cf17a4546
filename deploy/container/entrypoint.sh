#!/bin/sh
# The container's entry point: cnnserve with the container's defaults, then any flags given to `run IMAGE ...`
# (cnnserve keeps the last occurrence of a flag, so e.g. `--address 0.0.0.0:9001` overrides the default):
#   --model-repository $CNNSERVE_MODEL_REPOSITORY (/models; mount another repository there)
#   --address $CNNSERVE_ADDRESS (0.0.0.0:8001)   --metrics-address $CNNSERVE_METRICS_ADDRESS (0.0.0.0:8002)
#   --http-address $CNNSERVE_HTTP_ADDRESS (0.0.0.0:8000; KServe v2 REST, /v1 JSON and the playground)
# and, when the variable is set and not empty (files mounted into the container, e.g. compose/podman secrets):
#   --tls-cert $CNNSERVE_TLS_CERT  --tls-key $CNNSERVE_TLS_KEY  --tls-client-ca $CNNSERVE_TLS_CLIENT_CA
#   --auth-token-file $CNNSERVE_AUTH_TOKEN_FILE  --model-control-mode $CNNSERVE_MODEL_CONTROL_MODE
# The image's HEALTHCHECK (cnnserve-healthcheck) reads the same variables, so setting TLS through them keeps it
# working (it then also needs CNNSERVE_TLS_CA; see deploy/container/healthcheck.sh).
# A first argument that is not a flag is run as a command instead: `run IMAGE cnnctl --server HOST:PORT list`.
# exec: cnnserve becomes the process that the init (`run --init`, Kubernetes) signals; SIGTERM drains it.
set -eu
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi
# The variables' flags go before the caller's flags, which win (each `set --` prepends one pair).
[ -z "${CNNSERVE_TLS_CERT:-}" ] || set -- --tls-cert "$CNNSERVE_TLS_CERT" "$@"
[ -z "${CNNSERVE_TLS_KEY:-}" ] || set -- --tls-key "$CNNSERVE_TLS_KEY" "$@"
[ -z "${CNNSERVE_TLS_CLIENT_CA:-}" ] || set -- --tls-client-ca "$CNNSERVE_TLS_CLIENT_CA" "$@"
[ -z "${CNNSERVE_AUTH_TOKEN_FILE:-}" ] || set -- --auth-token-file "$CNNSERVE_AUTH_TOKEN_FILE" "$@"
[ -z "${CNNSERVE_MODEL_CONTROL_MODE:-}" ] || set -- --model-control-mode "$CNNSERVE_MODEL_CONTROL_MODE" "$@"
exec cnnserve --model-repository "${CNNSERVE_MODEL_REPOSITORY:-/models}" \
  --address "${CNNSERVE_ADDRESS:-0.0.0.0:8001}" \
  --metrics-address "${CNNSERVE_METRICS_ADDRESS:-0.0.0.0:8002}" \
  --http-address "${CNNSERVE_HTTP_ADDRESS:-0.0.0.0:8000}" "$@"
