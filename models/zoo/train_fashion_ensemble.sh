#!/bin/bash
# Train the members of the fashion_ensemble (train_fashion_mnist.py MEMBERS) into a model repository, JOBS at a
# time, each on one torch thread at nice 5, longest first.
#
#   models/zoo/train_fashion_ensemble.sh [-j JOBS] [--repository DIR] [--logs DIR] [MEMBER...]
#
# Default: every member (vgg_fashion_s1 alexnet_fashion vgg_fashion vgg_fashion_s2 lenet5_fashion
# lenet5_fashion_s1), 2 jobs, the project's models/repository, logs in ${TMPDIR:-/tmp}/cnnserve-fashion-train/.
# Each member writes REPO/NAME/1/model.onnx, REPO/NAME/labels.txt and (all but lenet5_fashion, whose config
# is hand-written) REPO/NAME/config.pbtxt; the runs are deterministic, so a rerun rewrites byte-identical files.
# LOGS/NAME.log is the member's training log; LOGS/summary.jsonl has one line per member (params, ONNX bytes,
# PyTorch test accuracy, wall and CPU seconds). Exit status: 0 when every member trained.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
python=/usr/bin/python3
jobs=2
repo="$(cd "$here/../repository" && pwd)"
logs="${TMPDIR:-/tmp}/cnnserve-fashion-train"
members=()
while [ $# -gt 0 ]; do
  case "$1" in
    -j) jobs="$2"; shift 2 ;;
    -j*) jobs="${1#-j}"; shift ;;
    --repository) repo="$2"; shift 2 ;;
    --logs) logs="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "train_fashion_ensemble.sh: unknown option $1" >&2; exit 2 ;;
    *) members+=("$1"); shift ;;
  esac
done
if [ ${#members[@]} -eq 0 ]; then
  mapfile -t members < <("$python" "$here/train_fashion_mnist.py" --list-members | awk 'NR > 1 { print $1 }')
fi
mkdir -p "$logs" "$repo"
: > "$logs/summary.jsonl"

echo "training ${members[*]} into $repo, $jobs at a time (logs in $logs)"
start=$(date +%s)
export python here repo logs
status=0
printf '%s\n' "${members[@]}" | xargs -P "$jobs" -I{} bash -c '
  t0=$(date +%s)
  if nice -n 5 "$python" "$here/train_fashion_mnist.py" --member {} --repository "$repo" --threads 1 \
       > "$logs/{}.log" 2>&1; then
    grep "^RESULT " "$logs/{}.log" | sed "s/^RESULT //" >> "$logs/summary.jsonl"
    echo "  {}: done in $(( $(date +%s) - t0 )) s ($(grep "^test accuracy" "$logs/{}.log"))"
  else
    echo "  {}: FAILED after $(( $(date +%s) - t0 )) s, see $logs/{}.log" >&2
    exit 255
  fi' || status=$?
echo "all done in $(( $(date +%s) - start )) s wall"
"$python" - "$logs/summary.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("| member | arch | seed | input | mean/std | params | ONNX bytes | PyTorch top-1 | wall s | CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %s | %d | %dx%d | %.4f/%.4f | %s | %s | %.2f%% | %.0f | %.0f |" % (
        r["name"], r["arch"], r["seed"], r["input_size"], r["input_size"], r["mean"], r["std"],
        format(r["params"], ","), format(r["onnx_bytes"], ","), 100 * r["test_accuracy_pytorch"], r["wall_s"],
        r["cpu_s"]))
print("total: %d members, %s ONNX bytes, %.0f CPU s" % (len(rows), format(sum(r["onnx_bytes"] for r in rows), ","),
                                                       sum(r["cpu_s"] for r in rows)))
EOF
exit $status
