#!/usr/bin/env bash
# Runs every libFuzzer target of build-fuzz/bin (make fuzz builds them) for FUZZ_SECONDS each, FUZZ_JOBS at a
# time, on a working copy of its seed corpus (tests/fuzz/corpus/<target> is read, never written), with its
# dictionary. Prints executions, coverage and new inputs per target, and a total. A crash, leak, timeout or
# out-of-memory fails the run and leaves the input in build-fuzz/crashes/<target>/: fix the bug, then copy the
# input to tests/fuzz/crashes/<target>/ so that CTest replays it for good.
#   usage: tests/fuzz/run_fuzz.sh [BUILD_DIR]          (default build-fuzz)
#   env:   FUZZ_SECONDS (300), FUZZ_JOBS (nproc), FUZZ_TARGETS (all), FUZZ_MERGE=1 minimises the working corpus
#          back into tests/fuzz/corpus/<target>/ afterwards (review and commit what it adds)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build-fuzz}
seconds=${FUZZ_SECONDS:-300}
jobs=${FUZZ_JOBS:-$(nproc)}
targets=${FUZZ_TARGETS:-"image_input onnx_import model_config kserve_request classify_request"}
export here build seconds

max_len() {
  case $1 in image_input | kserve_request | classify_request) echo 16384 ;; model_config) echo 4096 ;; *) echo 8192 ;; esac
}

run_one() {
  local t=$1 bin="$build/bin/fuzz_$1" work="$build/corpus/$1" crashes="$build/crashes/$1/" log="$build/logs/$1.log"
  [ -x "$bin" ] || { echo "$t: $bin is missing (make fuzz builds it)"; return 1; }
  mkdir -p "$work" "$crashes" "$(dirname "$log")"
  cp -n "$here/corpus/$t/"* "$work/" 2>/dev/null || true
  local rc=0
  "$bin" "$work" -dict="$here/dict/$t.dict" -max_total_time="$seconds" -max_len="$(max_len "$t")" \
    -timeout=10 -rss_limit_mb=3072 -print_final_stats=1 -artifact_prefix="$crashes" >"$log" 2>&1 || rc=$?
  local execs cov corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[bKM]+' "$log" | tail -1 | cut -d' ' -f2)
  printf '%-16s %12s execs  cov %6s  corpus %-12s %s\n' "$t" "${execs:-?}" "${cov:-?}" "${corp:-?}" \
    "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc): see $log and $crashes")"
  if [ $rc -eq 0 ] && [ "${FUZZ_MERGE:-0}" = 1 ]; then
    "$bin" -merge=1 "$here/corpus/$t" "$work" -max_len="$(max_len "$t")" >>"$log" 2>&1
  fi
  echo "${execs:-0}" > "$build/logs/$t.execs"
  return $rc
}

echo "fuzzing for ${seconds} s per target, ${jobs} at a time ($(date -u +%FT%TZ))"
export -f run_one max_len
failed=0
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run_one {}' || failed=1
total=0
for t in $targets; do total=$((total + $(cat "$build/logs/$t.execs" 2>/dev/null || echo 0))); done
echo "total: $total executions"
if [ $failed -ne 0 ]; then echo "fuzzing found a failure"; exit 1; fi
