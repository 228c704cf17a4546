#!/bin/bash
# An AlexNet occlusion map (patch 32, stride 8: 625 masked copies + the image) against the server's own engine
# time for that map (/metrics compute_infer before and after it) and against `cnnbench run` at the server's batch
# size, alternating, ROUNDS rounds of 3 maps (bench/RESULTS.md, "Occlusion maps").
#
#   bench/occlusion_vs_engine.sh [ROUNDS (2)]
#
# Needs `make zoo` and build/bench/images. Loopback only (ports 18733/18734); the server is stopped every round.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CNNSERVE_BIN_DIR:-$ROOT/build/bin}
ZOO=${CNNSERVE_ZOO_DIR:-$HOME/.cache/cnnserve/zoo}
ROUNDS=${1:-2}
IMAGE=$ROOT/build/bench/images/fashion_png/fashion_00000.png
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$ROOT/models/repository/add_zoo_models.sh" --zoo-dir "$ZOO" "$WORK/repository" alexnet > /dev/null
infer_s() {
  curl -s http://127.0.0.1:18734/metrics |
    awk '/^cnnserve_compute_infer_duration_seconds_total\{model="alexnet"/ {print $2}'
}
for round in $(seq "$ROUNDS"); do
  "$BIN/cnnserve" --model-repository "$WORK/repository" --address 127.0.0.1:18733 --http-address none \
    --metrics-address 127.0.0.1:18734 > "$WORK/server.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do "$BIN/cnnctl" --server 127.0.0.1:18733 list > /dev/null 2>&1 && break; sleep 0.5; done
  explain() { "$BIN/cnnctl" --server 127.0.0.1:18733 explain --model alexnet "$IMAGE" --patch 32 --stride 8 > /dev/null; }
  explain  # warm-up
  maps="" engine=""
  for _ in 1 2 3; do
    before=$(infer_s); start=$(date +%s.%N)
    explain
    end=$(date +%s.%N); after=$(infer_s)
    maps="$maps $(echo "$end - $start" | bc)"; engine="$engine $(echo "$after - $before" | bc)"
  done
  echo "round $round: map s:$maps; the server's engine time s:$engine"
  kill "$server"; wait "$server" 2> /dev/null || true
  "$BIN/cnnbench" run "$ZOO/alexnet.onnx" --batch 32 --threads 2 --seconds 3 | grep -E '^ +32 ' |
    awk -v r="$round" '{printf "round %s: cnnbench %s images/s at batch 32 (626 images: %.2f s)\n", r, $2, 626 / $2}'
done
