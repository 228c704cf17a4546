#!/usr/bin/env bash
# The engine-vs-peers suite of `make bench` (bench/run_all.sh): installs the ONNX Runtime peer if needed, then
# compares cnnbench with ONNX Runtime and PyTorch on the zoo models (bench/engine_vs_peers.py; arguments are
# passed on). Results: bench/results/engine_vs_peers.{md,jsonl,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
bench/peers/install.sh
mkdir -p bench/results
/usr/bin/python3 bench/engine_vs_peers.py --zoo "${ZOO_DIR:-$HOME/.cache/cnnserve/zoo}" \
  --markdown bench/results/engine_vs_peers.md --raw bench/results/engine_vs_peers.jsonl \
  --summary bench/results/engine_vs_peers.json "$@"
