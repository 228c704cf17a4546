#!/usr/bin/env bash
# `make bench`: every benchmark suite, the plots, and the generated sections of bench/RESULTS.md, in about
# 18 minutes on the 2-core development machine (17 min 51 s on 2026-11-28: peers 595 s, curves 190 s,
# overhead 283 s; the timings of each suite are printed at the end).
#
#   1. bench/engine_vs_peers.sh   cnnbench vs ONNX Runtime 1.30 vs PyTorch 1.13, batch 1/8/32, 3 rounds
#   2. bench/server_curves.py     cnnserve concurrency sweeps (batching on/off) and open-loop latency vs load
#   3. bench/server_overhead.py   server vs engine (alexnet), lenet5 vs the null model, cnnload's own cost
#   4. bench/server_security.py   TLS and TLS + token against plaintext, lenet5_fashion and the null model (~80 s)
#   5. bench/plot_results.py      PNGs in bench/results/ and the tables between the markers of bench/RESULTS.md
#
# Usage: bench/run_all.sh [SUITE...]    SUITE: peers, curves, overhead, security, plots (default: all five)
# Environment: BUILD (default build; needs bin/cnnbench, cnnserve, cnnload), ZOO_DIR (default
# ~/.cache/cnnserve/zoo; `make zoo`), PEER_MODELS, PEER_SECONDS, PEER_ROUNDS, CURVE_DURATION, OVERHEAD_ROUNDS,
# SECURITY_ROUNDS.
# Benchmark on a quiet machine: every suite alternates what it compares and takes medians, but 2 shared cores are
# noisy; bench/RESULTS.md states the load average at the start of each run.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
ZOO_DIR=${ZOO_DIR:-$HOME/.cache/cnnserve/zoo}
PEER_MODELS=${PEER_MODELS:-lenet5,alexnet,vgg16}
PEER_SECONDS=${PEER_SECONDS:-1.5}
PEER_ROUNDS=${PEER_ROUNDS:-3}
CURVE_DURATION=${CURVE_DURATION:-3}
OVERHEAD_ROUNDS=${OVERHEAD_ROUNDS:-3}
SECURITY_ROUNDS=${SECURITY_ROUNDS:-3}
PYTHON=/usr/bin/python3

suites=("$@")
[[ ${#suites[@]} -gt 0 ]] || suites=(peers curves overhead security plots)
for s in "${suites[@]}"; do
  case "$s" in peers|curves|overhead|security|plots) ;; *) echo "run_all.sh: unknown suite '$s'" >&2; exit 2 ;; esac
done
for bin in cnnbench cnnserve cnnload; do
  [[ -x "$BUILD/bin/$bin" ]] || { echo "run_all.sh: $BUILD/bin/$bin is missing: run 'make' first" >&2; exit 1; }
done
mkdir -p bench/results

timings=()
run() {  # run NAME COMMAND...: runs and records the duration
  local name=$1 start=$SECONDS
  shift
  echo "== $name: $*" >&2
  "$@"
  timings+=("$name $((SECONDS - start)) s")
}

for s in "${suites[@]}"; do
  case "$s" in
    peers)
      run peers bench/engine_vs_peers.sh --build "$BUILD" --models "$PEER_MODELS" --batch 1,8,32 --threads 2 \
        --seconds "$PEER_SECONDS" --rounds "$PEER_ROUNDS" --runtimes cnnserve,onnxruntime,pytorch ;;
    curves)
      run curves $PYTHON bench/server_curves.py --build "$BUILD" --zoo "$ZOO_DIR" --duration "$CURVE_DURATION" ;;
    overhead)
      run overhead $PYTHON bench/server_overhead.py --build "$BUILD" --zoo "$ZOO_DIR" --rounds "$OVERHEAD_ROUNDS" ;;
    security)
      run security $PYTHON bench/server_security.py --build "$BUILD" --rounds "$SECURITY_ROUNDS" ;;
    plots)
      run plots $PYTHON bench/plot_results.py --update-md bench/RESULTS.md ;;
  esac
done
echo "make bench: ${timings[*]}; total ${SECONDS} s" >&2
