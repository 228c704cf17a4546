#!/bin/bash
# The response cache against the same model without it, on one server, alternating: requests/s and latency of
# cnnload sending one image over and over (what a cache is for: thumbnails, retries, health checks with a fixed
# image), closed loop at concurrency 1 and 8.
#
#   bench/response_cache.sh [ROUNDS (3)] [SECONDS per row (5)]
#
# Models: lenet5_fashion (28x28 gray PNG) and the zoo's alexnet (an ImageNet-like JPEG; needs `make zoo`), each
# as shipped and as a copy with `response_cache { enable: true }` (NAME_cached). Prints cnnload's rows; the medians
# go into bench/RESULTS.md ("Response cache"). Loopback only; every run is bounded by its duration.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CNNSERVE_BIN_DIR:-$ROOT/build/bin}
ROUNDS=${1:-3}
SECONDS_PER_ROW=${2:-5}
ZOO=${CNNSERVE_ZOO_DIR:-$HOME/.cache/cnnserve/zoo}
PNG=$ROOT/build/bench/images/fashion_png/fashion_00000.png
JPEG=$(ls "$ROOT"/build/bench/images/imagenet_like/*.jpg | head -1)
[ -f "$PNG" ] && [ -f "$JPEG" ] || { echo "response_cache.sh: run make bench-images (build/bench/images)" >&2; exit 2; }

WORK=$(mktemp -d)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

REPO=$WORK/repository
mkdir -p "$REPO"
cp -r "$ROOT/models/repository/lenet5_fashion" "$REPO/"
"$ROOT/models/repository/add_zoo_models.sh" --zoo-dir "$ZOO" "$REPO" alexnet > /dev/null
for model in lenet5_fashion alexnet; do
  cp -r "$REPO/$model" "$REPO/${model}_cached"
  sed -i "s/^name: \"$model\"/name: \"${model}_cached\"/" "$REPO/${model}_cached/config.pbtxt"
  printf '\nresponse_cache { enable: true }\n' >> "$REPO/${model}_cached/config.pbtxt"
done

"$BIN/cnnserve" --model-repository "$REPO" --address 127.0.0.1:0 --http-address none --metrics-address none \
  > "$WORK/server.out" 2> "$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 600); do
  ADDRESS=$(sed -n 's/.*cnnserve listening on \([^ ]*\).*/\1/p' "$WORK/server.out" "$WORK/server.log" | head -1)
  [ -n "$ADDRESS" ] && "$BIN/cnnserve" --health-probe "$ADDRESS" > /dev/null 2>&1 && break
  sleep 0.5
done
[ -n "${ADDRESS:-}" ] || { echo "cnnserve did not start:" >&2; tail "$WORK/server.log" >&2; exit 1; }
echo "# $(date -u '+%F %H:%M') UTC, $(nproc) cores, server $ADDRESS, $ROUNDS rounds x $SECONDS_PER_ROW s per row"

for round in $(seq "$ROUNDS"); do
  for model in lenet5_fashion alexnet; do
    image=$PNG
    [ "$model" = alexnet ] && image=$JPEG
    for variant in "$model" "${model}_cached"; do
      echo "## round $round $variant"
      "$BIN/cnnload" --server "$ADDRESS" --model "$variant" --images "$image" --concurrency 1,8 \
        --warmup 1 --duration "$SECONDS_PER_ROW"
    done
  done
done
