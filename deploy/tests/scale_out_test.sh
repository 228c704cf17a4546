#!/usr/bin/env bash
# Scale-out test: Debian's nginx (deploy/nginx/nginx.conf unchanged; the shipped listen.conf and backend.conf
# with the certificate paths of a PKI that deploy/secrets/make-dev-secrets.sh makes for the test) in front of three
# cnnserve replicas, all on 127.0.0.1 with free ports, as deploy/compose.yaml runs them: TLS from the client to
# nginx and from nginx to the replicas (verified against the test CA), --auth-token-file with sha256 hashes,
# --model-control-mode none. Driven by deploy/tests/grpc_load.py over one HTTP/2 connection with a client token.
#   0. routes:   deploy/tests/grpc_routes.py through nginx: health and ServerLive/Ready answer without a token,
#                Classify and metadata with the client token, Classify without one is UNAUTHENTICATED (the
#                replica's answer passed through), RepositoryModelLoad/Unload, RepositoryIndex, ModelStatistics and
#                reflection are PERMISSION_DENIED by nginx even with a token of scope `all`; the same table straight
#                to a replica shows that nginx is what refuses them (load: FAILED_PRECONDITION, mode none);
#   1. spread:   a load run through nginx reaches all three replicas (per-replica request counts from each
#                replica's Prometheus metrics, cnnserve_request_success_total; nginx's access log as a cross-check,
#                or alone when this cnnserve has no --metrics-address yet);
#   2. failover: SIGKILL of one replica in the middle of a run costs at most the calls in flight on it (at most
#                the client's concurrency, and only calls started before the kill) and the others keep answering;
#   3. rejoin:   the replica restarted on its port is back in rotation;
#   then SIGTERM drains every replica and each exits 0.
# Usage: deploy/tests/scale_out_test.sh [BUILD_DIR]   (default build; needs bin/cnnserve and python/ stubs)
# Registered with CTest (tests/deploy, label deploy). Installs nginx-light if missing (as root). Leaves nothing
# running: every process it starts is stopped on exit.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
PY=/usr/bin/python3
CNNSERVE=$BUILD/bin/cnnserve
STUBS=$BUILD/python
CONCURRENCY=6
REPLICAS=3

log() { echo "scale_out_test: $*"; }
fail() { echo "scale_out_test: FAIL: $*" >&2; exit 1; }

[ -x "$CNNSERVE" ] || fail "$CNNSERVE not built"
[ -f "$STUBS/cnnserve/v1/classifier_pb2.py" ] || fail "no Python stubs in $STUBS (build target python_stubs)"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
  log "installing nginx-light"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light >/dev/null; }
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi

TMP=$(mktemp -d /tmp/cnnserve-scale-out.XXXXXX)
chmod 755 "$TMP"  # nginx's workers (nobody when started as root) read below it
declare -a PIDS=() PORTS=() MPORTS=()
NGINX_PID=""
cleanup() {
  local rc=$?
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  for pid in "${PIDS[@]}"; do [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    for f in "$TMP"/replica*.log "$TMP"/nginx.err; do
      [ -f "$f" ] && { echo "---- $f (last 20 lines)"; tail -n 20 "$f"; }
    done
  fi
  if [ -n "${KEEP_TMP:-}" ]; then echo "scale_out_test: kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free ports: nginx, then a gRPC and a metrics port per replica (bound at once, so all distinct, then released).
read -r -a FREE <<<"$($PY -c '
import socket
socks = [socket.socket() for _ in range(1 + 2 * '"$REPLICAS"')]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
NGINX_PORT=${FREE[0]}
for ((i = 0; i < REPLICAS; i++)); do PORTS[i]=${FREE[1 + 2 * i]}; MPORTS[i]=${FREE[2 + 2 * i]}; done

HAVE_METRICS=0
if "$CNNSERVE" --help | grep -q -- '--metrics-address'; then HAVE_METRICS=1; fi
log "replicas on ports ${PORTS[*]}, nginx on $NGINX_PORT, metrics endpoint: $([ $HAVE_METRICS = 1 ] && echo "ports ${MPORTS[*]}" || echo "not in this cnnserve (counting from nginx's log)")"

# The test's PKI and tokens, made the way deploy/README.md tells: a CA, the server certificate (SANs cnnserve,
# 127.0.0.1, ...), tokens (client: infer,metadata; admin: all) and the server's token file of sha256 hashes.
bash "$SRC/deploy/secrets/make-dev-secrets.sh" "$TMP/pki" >"$TMP/pki.log" 2>&1 ||
  { cat "$TMP/pki.log"; fail "deploy/secrets/make-dev-secrets.sh failed"; }
PKI=$TMP/pki

start_replica() {  # index
  local i=$1 extra=()
  [ $HAVE_METRICS = 1 ] && extra=(--metrics-address "127.0.0.1:${MPORTS[i]}")
  "$CNNSERVE" --model-repository "$SRC/models/repository" --address "127.0.0.1:${PORTS[i]}" --threads 1 \
    --drain-timeout-s 10 --tls-cert "$PKI/tls.crt" --tls-key "$PKI/tls.key" --auth-token-file "$PKI/tokens" \
    --model-control-mode none "${extra[@]}" >>"$TMP/replica$i.log" 2>&1 &
  PIDS[i]=$!
}
wait_serving() {  # address, what
  local deadline=$((SECONDS + 90))
  until "$CNNSERVE" --health-probe "$1" --tls-ca "$PKI/ca.crt" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "$2 ($1) not SERVING after 90 s"
    sleep 0.2
  done
}
# Successful Classify calls a replica has answered (its Prometheus counter, summed over versions).
metric_count() {  # index; prints "-" when the replica does not answer
  local text
  text=$(curl -sf --max-time 20 "http://127.0.0.1:${MPORTS[$1]}/metrics") || { echo -; return; }
  awk '/^cnnserve_request_success_total\{/ && /model="lenet5_fashion"/ {s += $NF} END {printf "%d\n", s}' <<<"$text"
}
# Successful calls nginx's access log says each replica answered (the last address of $upstream_addr).
nginx_counts() {
  $PY - "$TMP/nginx.access" "${PORTS[@]}" <<'EOF'
import re, sys
ports = sys.argv[2:]
counts = dict.fromkeys(ports, 0)
for line in open(sys.argv[1]):
    m = re.search(r"upstream=(.*?) upstream_status=(.*?) grpc_status=(\S*)", line)
    if not m or m.group(3) != "0" or "/cnnserve.v1.Classifier/Classify " not in line:
        continue
    port = m.group(1).split(",")[-1].split(":")[-1].strip()
    if port in counts:
        counts[port] += 1
print(" ".join(str(counts[p]) for p in ports))
EOF
}
counts() {  # the per-replica counts now, in replica order ("-" for a replica that is down)
  if [ $HAVE_METRICS = 1 ]; then
    local out=() i
    for ((i = 0; i < REPLICAS; i++)); do out+=("$(metric_count "$i")"); done
    echo "${out[*]}"
  else
    nginx_counts
  fi
}

# ---- replicas, images, nginx -----------------------------------------------------------------------------------
for ((i = 0; i < REPLICAS; i++)); do start_replica "$i"; done
log "writing Fashion-MNIST test images"
$PY "$SRC/models/zoo/train_fashion_mnist.py" --write-test-images "$TMP/images" --count 60 >"$TMP/images.log" 2>&1 ||
  { cat "$TMP/images.log"; fail "cannot write the test images"; }
for ((i = 0; i < REPLICAS; i++)); do wait_serving "127.0.0.1:${PORTS[i]}" "replica $i"; done

mkdir -p "$TMP/nginx"
cp "$SRC/deploy/nginx/nginx.conf" "$TMP/nginx/nginx.conf"
: >"$TMP/nginx/upstream.conf"
for ((i = 0; i < REPLICAS; i++)); do
  echo "server 127.0.0.1:${PORTS[i]} max_fails=1 fail_timeout=2s;" >>"$TMP/nginx/upstream.conf"
done
# The shipped files, with the test's certificate paths and address (compose mounts them at /run/secrets).
sed "s#/run/secrets/#$PKI/#" "$SRC/deploy/nginx/backend.conf" >"$TMP/nginx/backend.conf"
sed "s#/run/secrets/#$PKI/#; s#^listen 8001 #listen 127.0.0.1:$NGINX_PORT #" "$SRC/deploy/nginx/listen.conf" \
  >"$TMP/nginx/listen.conf"
grep -q "^listen 127.0.0.1:$NGINX_PORT ssl http2;" "$TMP/nginx/listen.conf" ||
  fail "deploy/nginx/listen.conf no longer has 'listen 8001 ssl http2;'"
"$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e stderr -t >"$TMP/nginx.err" 2>&1 ||
  { cat "$TMP/nginx.err"; fail "nginx -t rejects deploy/nginx/nginx.conf"; }
"$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e stderr -g "daemon off; pid $TMP/nginx/nginx.pid;" \
  >"$TMP/nginx.access" 2>>"$TMP/nginx.err" &
NGINX_PID=$!
wait_serving "127.0.0.1:$NGINX_PORT" "nginx"
log "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (pid $NGINX_PID) in front of replicas (pids ${PIDS[*]})"

load() {  # out.json, grpc_load.py flags...
  local out=$1; shift
  $PY "$SRC/deploy/tests/grpc_load.py" --server "127.0.0.1:$NGINX_PORT" --stubs "$STUBS" --images "$TMP/images" \
    --tls-ca "$PKI/ca.crt" --token-file "$PKI/client.token" --concurrency $CONCURRENCY --out "$out" "$@"
}
delta() {  # before-counts after-counts -> per-replica differences
  $PY -c 'import sys; b, a = sys.argv[1].split(), sys.argv[2].split()
print(" ".join("-" if "-" in (x, y) else str(int(y) - int(x)) for x, y in zip(b, a)))' "$1" "$2"
}

# ---- 0. routes: what nginx passes and what it refuses ------------------------------------------------------------
routes() {  # address, proxy|replica
  $PY "$SRC/deploy/tests/grpc_routes.py" --server "$1" --via "$2" --stubs "$STUBS" --tls-ca "$PKI/ca.crt" \
    --image "$TMP/images/$(sed -n '2s/,.*//p' "$TMP/images/labels.csv")" \
    --client-token-file "$PKI/client.token" --admin-token-file "$PKI/admin.token"
}
routes "127.0.0.1:$NGINX_PORT" proxy | sed 's/^/  /' || fail "routes through nginx"
routes "127.0.0.1:${PORTS[0]}" replica | sed 's/^/  /' || fail "routes straight to a replica"
log "routes OK: nginx passes health, inference and metadata (tokens checked by the replicas) and refuses model control"

# ---- 1. spread -------------------------------------------------------------------------------------------------
before=$(counts)
load "$TMP/spread.json" --requests 600 | sed 's/^/  spread: /'
after=$(counts)
spread=$(delta "$before" "$after")
log "spread: per-replica calls $spread (nginx log: $(nginx_counts))"
$PY - "$TMP/spread.json" "$spread" <<'EOF' || fail "spread"
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
per = [int(x) for x in sys.argv[2].split()]
assert s["ok"] == s["calls"] == 600, "all 600 calls must succeed: %s" % s
assert s["correct"] >= 0.8 * s["ok"], "top-1 accuracy through nginx too low: %s" % s
assert sum(per) == s["ok"], "replicas counted %s calls, the client %d" % (per, s["ok"])
assert min(per) >= 0.2 * s["ok"], "every replica must take a fair share (>= 20%%): %s" % per
print("scale_out_test: spread OK: %d calls, %.0f calls/s, %d correct, per replica %s"
      % (s["ok"], s["calls_per_s"], s["correct"], per))
EOF

# ---- 2. failover: SIGKILL replica 1 mid-run --------------------------------------------------------------------
VICTIM=1
before=$(counts)
load "$TMP/failover.json" --seconds 8 >"$TMP/failover.out" &
LOAD_PID=$!
sleep 3
KILL_TIME=$(date +%s.%N)
kill -KILL "${PIDS[VICTIM]}"
wait "${PIDS[VICTIM]}" 2>/dev/null || true
PIDS[VICTIM]=""
log "failover: killed replica $VICTIM (port ${PORTS[VICTIM]}) with SIGKILL 3 s into an 8 s run"
wait "$LOAD_PID" || fail "the load client failed"
sed 's/^/  failover: /' "$TMP/failover.out"
after=$(counts)
log "failover: per-replica calls $(delta "$before" "$after") (nginx log totals now: $(nginx_counts))"
$PY - "$TMP/failover.json" "$KILL_TIME" "$CONCURRENCY" "$(delta "$before" "$after")" "$VICTIM" <<'EOF' || fail "failover"
import json, sys
data = json.load(open(sys.argv[1]))
kill, concurrency, victim = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
per = sys.argv[4].split()
records = data["records"]
failed = [r for r in records if r["code"] != "OK"]
ok_after = [r for r in records if r["code"] == "OK" and r["start"] > kill + 1.0]
print("scale_out_test: failover: failed calls (start, end) - kill, s:", ["%+.3f..%+.3f" % (r["start"] - kill, r["end"] - kill) for r in failed])
# At most the calls in flight on the victim when it died: all failed calls were in flight at one instant (so
# there are at most `concurrency` of them), and that instant is the kill (within 1 s for the process to die).
assert len(failed) <= concurrency, "%d calls failed, more than could be in flight (%d): %s" % (
    len(failed), concurrency, failed[:8])
if failed:
    latest_start, earliest_end = max(r["start"] for r in failed), min(r["end"] for r in failed)
    assert latest_start <= earliest_end, "the failed calls were not all in flight at one instant: %s" % failed
    assert kill - 0.5 <= earliest_end <= kill + 1.0, "calls failed away from the kill: %s" % failed
assert len(ok_after) >= 50, "only %d calls succeeded after the kill" % len(ok_after)
for i, n in enumerate(per):
    if i != victim:
        assert n != "-" and int(n) > 0, "replica %d answered nothing during the failover run: %s" % (i, per)
print("scale_out_test: failover OK: %d calls, %d failed (%s; limit %d in flight), %d succeeded after the kill"
      % (len(records), len(failed), sorted({r["code"] for r in failed}) or "none", concurrency, len(ok_after)))
EOF

# ---- 3. rejoin: restart it on the same port --------------------------------------------------------------------
start_replica "$VICTIM"
wait_serving "127.0.0.1:${PORTS[VICTIM]}" "restarted replica $VICTIM"
sleep 2.5  # nginx's fail_timeout (2 s): then it tries the replica again
before=$(counts)
load "$TMP/rejoin.json" --requests 600 | sed 's/^/  rejoin: /'
after=$(counts)
rejoin=$(delta "$before" "$after")
log "rejoin: per-replica calls $rejoin"
$PY - "$TMP/rejoin.json" "$rejoin" "$VICTIM" <<'EOF' || fail "rejoin"
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
per, victim = [int(x) for x in sys.argv[2].split()], int(sys.argv[3])
assert s["ok"] == s["calls"] == 600, "all 600 calls must succeed after the restart: %s" % s
assert sum(per) == s["ok"], "replicas counted %s calls, the client %d" % (per, s["ok"])
assert per[victim] >= 0.2 * s["ok"], "the restarted replica is not back in rotation: %s" % per
print("scale_out_test: rejoin OK: restarted replica %d answered %d of %d calls, per replica %s"
      % (victim, per[victim], s["ok"], per))
EOF

# ---- SIGTERM: every replica drains and exits 0 -----------------------------------------------------------------
for ((i = 0; i < REPLICAS; i++)); do kill -TERM "${PIDS[i]}"; done
for ((i = 0; i < REPLICAS; i++)); do
  rc=0; wait "${PIDS[i]}" || rc=$?
  PIDS[i]=""
  [ $rc -eq 0 ] || fail "replica $i exited $rc after SIGTERM"
done
log "SIGTERM: all $REPLICAS replicas exited 0"
log "PASS"
