#!/usr/bin/env bash
# `make bench`: installs the ONNX Runtime peer if needed, then compares cnnbench with ONNX Runtime and PyTorch on
# the zoo models. Results go to bench/results/ (raw JSON lines and a Markdown table) and stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
bench/peers/install.sh
mkdir -p bench/results
/usr/bin/python3 bench/engine_vs_peers.py --zoo "${ZOO_DIR:-$HOME/.cache/cnnserve/zoo}" \
  --markdown bench/results/engine_vs_peers.md --raw bench/results/engine_vs_peers.jsonl "$@"
