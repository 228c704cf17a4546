#!/bin/bash
# REST JSON vs REST binary vs gRPC (KServe ModelInfer) on one cnnserve, same models, same synthetic FP32 inputs,
# same closed-loop concurrency, in one run: lenet5_fashion and a null model of the same input (no engine work).
#   bench/http_vs_grpc.sh [CONCURRENCY] [DURATION_S]      (defaults 8 and 5; build/bin must be built)
# Prints one line per (model, protocol): requests/s, p50 and p99 in microseconds.
set -euo pipefail
cd "$(dirname "$0")/.."
concurrency=${1:-8}
duration=${2:-5}
bin=build/bin
repo=$(mktemp -d)
out=$(mktemp)
trap 'kill $server 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$repo" "$out"' EXIT
cp -r models/repository/lenet5_fashion "$repo/"
mkdir -p "$repo/null_fashion"
cat > "$repo/null_fashion/config.pbtxt" <<'CONFIG'
name: "null_fashion"
platform: "null"
max_batch_size: 64
input { dims: [1, 32, 32] }
num_classes: 10
dynamic_batching { max_queue_delay_us: 500 preferred_batch_size: [8, 32] }
CONFIG
"$bin/cnnserve" --model-repository "$repo" --address 127.0.0.1:0 --http-address 127.0.0.1:0 \
  --metrics-address none --log-level warn > "$out" &
server=$!
for _ in $(seq 1 600); do grep -q "listening on" "$out" && break; sleep 0.1; done
grpc=$(sed -n 's/^cnnserve listening on //p' "$out")
http=$(sed -n 's/^cnnserve http on //p' "$out")
echo "server: gRPC $grpc, HTTP $http; concurrency $concurrency, ${duration} s per row, $(nproc) cores"
for model in lenet5_fashion null_fashion; do
  for mode in json binary; do
    "$bin/httpload" --url "$http" --model "$model" --mode "$mode" --concurrency "$concurrency" \
      --warmup-s 1 --duration-s "$duration"
  done
  "$bin/cnnload" --server "$grpc" --protocol kserve --model "$model" --synthetic --concurrency "$concurrency" \
    --threads 2 --warmup 1 --duration "$duration" --json --quiet |
    /usr/bin/python3 -c 'import json,sys
d = json.load(sys.stdin); r = d["rows"][0]
l = r["latency_ms"]
print("mode=grpc-kserve model=%s concurrency=%s requests/s=%.1f p50_us=%d p99_us=%d errors=%d" % (
    sys.argv[1], sys.argv[2], r["requests_per_s"], l["p50"] * 1000, l["p99"] * 1000, r["error_count"]))' \
    "$model" "$concurrency"
done
