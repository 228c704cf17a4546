#!/bin/sh
# The container's entry point: cnnserve with the container's defaults, then any flags given to `run IMAGE ...`
# (cnnserve keeps the last occurrence of a flag, so e.g. `--address 0.0.0.0:9001` overrides the default):
#   --model-repository $CNNSERVE_MODEL_REPOSITORY (/models; mount another repository there)
#   --address $CNNSERVE_ADDRESS (0.0.0.0:8001)   --metrics-address $CNNSERVE_METRICS_ADDRESS (0.0.0.0:8002)
# A first argument that is not a flag is run as a command instead: `run IMAGE cnnctl --server HOST:PORT list`.
# exec: cnnserve becomes the process that the init (`run --init`, Kubernetes) signals; SIGTERM drains it.
set -eu
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi
exec cnnserve --model-repository "${CNNSERVE_MODEL_REPOSITORY:-/models}" \
  --address "${CNNSERVE_ADDRESS:-0.0.0.0:8001}" \
  --metrics-address "${CNNSERVE_METRICS_ADDRESS:-0.0.0.0:8002}" "$@"
