#!/bin/bash
# Peak RSS of `cnnbench run MODEL --batch 1` per precision, against the model's fp32 weight bytes (issue 15:
# VGG-16 int8 at batch 1 <= 0.5x the fp32 weights). One markdown row per model and precision.
#
#   bench/precision_memory.sh [ZOO_DIR] [BUILD_DIR] [MODELS]
#
# ZOO_DIR (default ~/.cache/cnnserve/zoo) needs MODEL.onnx and, for int8, MODEL.calibration.txt (make zoo-int8).
# BUILD_DIR (default build) holds bin/cnnbench: pass an older build to measure it on the same files.
# MODELS: comma-separated (default alexnet,vgg16).
set -euo pipefail
ZOO=${1:-$HOME/.cache/cnnserve/zoo}
BUILD=${2:-build}
MODELS=${3:-alexnet,vgg16}
echo "| model | precision | images/s (batch 1) | load ms | peak RSS MB | fp32 weights MB | RSS / weights |"
echo "|---|---|---:|---:|---:|---:|---:|"
for model in ${MODELS//,/ }; do
  onnx="$ZOO/$model.onnx"
  weights_mb=$("$BUILD/bin/cnnbench" inspect "$onnx" | sed -n 's/.*, \([0-9.]*\) MB of weights.*/\1/p')
  for precision in fp32 bf16 int8; do
    extra=()
    if [ "$precision" = int8 ]; then
      [ -f "$ZOO/$model.calibration.txt" ] || { echo "$ZOO/$model.calibration.txt is missing: make zoo-int8" >&2; exit 1; }
      extra=(--calibration "$ZOO/$model.calibration.txt")
    fi
    log=$(mktemp)
    /usr/bin/time -v "$BUILD/bin/cnnbench" run "$onnx" --batch 1 --seconds 2 --precision "$precision" \
      "${extra[@]}" > "$log" 2>&1
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
    load_ms=$(sed -n 's/.*, load \([0-9.]*\) ms.*/\1/p' "$log")
    images=$(awk '$1 == "1" && NF >= 7 {print $2}' "$log")
    rm -f "$log"
    awk -v m="$model" -v p="$precision" -v i="$images" -v l="$load_ms" -v r="$rss_kb" -v w="$weights_mb" \
      'BEGIN {printf "| %s | %s | %s | %s | %.0f | %.0f | %.2f |\n", m, p, i, l, r / 1000, w, r / 1000 / w}'
  done
done
