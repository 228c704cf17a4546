#!/usr/bin/env bash
# Container test: builds the root Dockerfile with podman (no registry) and checks the image for real:
#   - podman build --pull=never --format docker (../shared/container/oci-setup.sh makes debian:bookworm local);
#   - the image: non-root USER, EXPOSE 8001 8002, HEALTHCHECK, OPENCV_IO_MAX_IMAGE_PIXELS; its size;
#   - podman run --init -p 127.0.0.1:PORT:8001: the HEALTHCHECK command passes, cnnctl on the host lists the model
#     and classifies real Fashion-MNIST images through the published port (top-1 accuracy checked), the server
#     process inside is not root, the metrics endpoint (when the image has it) counts the calls;
#   - a model repository mounted over /models replaces the image's;
#   - TLS and tokens through the entrypoint's variables (a PKI of deploy/secrets/make-dev-secrets.sh mounted
#     read-only): the HEALTHCHECK passes over TLS, a plaintext probe fails, deploy/tests/grpc_routes.py's table
#     straight to the container (tokens by scope, health open, model control refused: mode none);
#   - SIGTERM during a load run: calls admitted before it finish OK, later ones are refused; the container exits 0;
#   - deploy/compose.yaml with podman-compose (Debian): 3 replicas of the image behind deploy/nginx's image, with
#     that PKI as compose secrets (TLS client -> nginx -> replicas, tokens), calls spread over all three (nginx's
#     log), model control refused by nginx, every replica exits 0 on SIGTERM.
# Usage: deploy/tests/container_test.sh [BUILD_DIR]   (default build: host cnnctl/cnnserve and python/ stubs)
#   IMAGE=...   the tag to build (default localhost/cnnserve:<project version>, what deploy/k8s and compose use)
# `make test-container` runs it; .ci/run runs that after `make test`. Root only (podman as root). Removes its
# containers on exit and keeps the image (podman's layer cache and the builder's ccache make rebuilds quick).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
PY=/usr/bin/python3
VERSION=$(sed -n 's/^project(cnnserve VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
IMAGE=${IMAGE:-localhost/cnnserve:$VERSION}
OCI_SETUP=${OCI_SETUP:-$SRC/../shared/container/oci-setup.sh}
T0=$SECONDS

log() { echo "container_test: $*"; }
fail() { echo "container_test: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (rootful podman)"
for f in "$BUILD/bin/cnnctl" "$BUILD/bin/cnnserve" "$BUILD/python/cnnserve/v1/classifier_pb2.py"; do
  [ -e "$f" ] || fail "$f missing: build first (make)"
done
[ -f "$OCI_SETUP" ] || fail "$OCI_SETUP not found"
# podman, runc, debootstrap, the VM's containers.conf/storage.conf and a local debian:bookworm base image.
# shellcheck source=/dev/null
source "$OCI_SETUP" >/dev/null
set -euo pipefail  # (the setup script changes shell options)
export CONTAINERS_CONF CONTAINERS_STORAGE_CONF
log "podman $(podman version --format '{{.Client.Version}}'), setup done in $((SECONDS - T0)) s"

TMP=$(mktemp -d /tmp/cnnserve-container.XXXXXX)
chmod 755 "$TMP"
NAME=cnnserve-test-$$
declare -a CONTAINERS=()
CLEANUP_COMPOSE=0
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    for c in "${CONTAINERS[@]}"; do
      echo "---- podman logs $c (last 30 lines)"; podman logs --tail 30 "$c" 2>&1 || true
    done
  fi
  for c in "${CONTAINERS[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  [ "$CLEANUP_COMPOSE" = 1 ] && compose_down
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ---------------------------------------------------------------------------------------------------
log "building $IMAGE from $SRC (log: $TMP/build.log)"
t=$SECONDS
if ! podman build --pull=never --format docker -t "$IMAGE" -f "$SRC/Dockerfile" "$SRC" >"$TMP/build.log" 2>&1; then
  tail -n 60 "$TMP/build.log"
  fail "podman build failed"
fi
BUILD_S=$((SECONDS - t))
# The builder's unit tests (one line each), its ccache statistics and the runtime packages it chose.
awk '/^== / {t = $2} /^\[  (PASSED|FAILED) / {print "  build: unit test " t ": " $0}
     /^ *(Hits|Misses):/ {print "  build: ccache " $0} /^runtime packages:/ {print "  build: " NF - 2 " " $0}' \
  "$TMP/build.log"
grep -q '^== ' "$TMP/build.log" || echo "  build: every step cached (the unit tests ran when the builder layer was made)"
log "image built in ${BUILD_S} s ($(grep -c -- '--> Using cache' "$TMP/build.log" || true) cached steps)"
podman image ls "$IMAGE"
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "image size: $SIZE bytes ($((SIZE / 1000000)) MB)"

# ---- image metadata ----------------------------------------------------------------------------------------------
inspect() { podman image inspect --format "$1" "$IMAGE"; }
user=$(inspect '{{.Config.User}}')
[ -n "$user" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] || fail "image USER is '$user' (root)"
ports=$(inspect '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}')
[[ $ports == *8001/tcp* && $ports == *8002/tcp* ]] || fail "image exposes '$ports', not 8001 and 8002"
health=$(inspect '{{if .Config.Healthcheck}}{{join .Config.Healthcheck.Test " "}}{{end}}')
[[ $health == *"cnnserve-healthcheck"* ]] || fail "image HEALTHCHECK is '$health'"
env=$(inspect '{{join .Config.Env " "}}')
[[ $env == *OPENCV_IO_MAX_IMAGE_PIXELS=* ]] || fail "image has no OPENCV_IO_MAX_IMAGE_PIXELS"
log "image: USER $user, EXPOSE $ports, HEALTHCHECK [$health]"

# ---- run it ------------------------------------------------------------------------------------------------------
read -r PORT MPORT PORT2 <<<"$($PY -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
wait_serving() {  # address, container, probe flags (TLS)...
  local deadline=$((SECONDS + 120))
  until "$BUILD/bin/cnnserve" --health-probe "$1" "${@:3}" >/dev/null 2>&1; do
    [ "$(podman inspect --format '{{.State.Running}}' "$2")" = true ] || fail "container $2 exited"
    [ $SECONDS -lt $deadline ] || fail "$2 ($1) not SERVING after 120 s"
    sleep 0.3
  done
}
t=$SECONDS
CONTAINERS+=("$NAME")
# (podman says on stderr that it cannot schedule the HEALTHCHECK without systemd: kept in podman.err.)
podman run -d --init --name "$NAME" -p "127.0.0.1:$PORT:8001" -p "127.0.0.1:$MPORT:8002" "$IMAGE" \
  --drain-timeout-s 20 >/dev/null 2>>"$TMP/podman.err" || { cat "$TMP/podman.err"; fail "podman run failed"; }
wait_serving "127.0.0.1:$PORT" "$NAME"
log "container $NAME SERVING on 127.0.0.1:$PORT after $((SECONDS - t)) s"
# The image's own HEALTHCHECK command, run once (podman cannot schedule it here: no systemd).
podman healthcheck run "$NAME" >/dev/null || fail "podman healthcheck run: unhealthy"
log "HEALTHCHECK command: healthy"

uid=$(podman exec "$NAME" id -u)
[ "$uid" != 0 ] || fail "podman exec id -u is 0"
server_user=$(podman top "$NAME" user args | awk '/cnnserve --model-repository/ {print $1}')
[ -n "$server_user" ] && [ "$server_user" != root ] && [ "$server_user" != 0 ] ||
  fail "the cnnserve process runs as '${server_user:-?}': $(podman top "$NAME" user args)"
log "non-root: cnnserve runs as user $server_user (uid $uid)"

"$BUILD/bin/cnnctl" --server "127.0.0.1:$PORT" list | tee "$TMP/list.txt" | sed 's/^/  list: /'
grep -q lenet5_fashion "$TMP/list.txt" || fail "cnnctl list does not show lenet5_fashion"

$PY "$SRC/models/zoo/train_fashion_mnist.py" --write-test-images "$TMP/images" --count 100 >"$TMP/images.log" 2>&1 ||
  { cat "$TMP/images.log"; fail "cannot write the test images"; }
chmod -R a+rX "$TMP/images"
classify_and_score() {  # address, model, label -> checks top-1 accuracy of cnnctl classify on all images
  "$BUILD/bin/cnnctl" --server "$1" classify --model "$2" --top-k 1 --batch 16 --json "$TMP"/images/*.png \
    "$TMP"/images/*.jpg >"$TMP/classify.json" || fail "cnnctl classify through $1 failed"
  $PY - "$TMP/classify.json" "$TMP/images/labels.csv" "$3" <<'EOF' || fail "classification through the container"
import csv, json, os, sys
results = json.load(open(sys.argv[1]))
labels = {r["filename"]: int(r["label"]) for r in csv.DictReader(open(sys.argv[2]))}
correct = sum(r["classes"][0]["index"] == labels[os.path.basename(r["file"])] for r in results)
assert len(results) == len(labels), "%d results for %d images" % (len(results), len(labels))
assert correct >= 0.85 * len(results), "top-1 accuracy %d/%d" % (correct, len(results))
print("container_test: %s: classified %d real images (PNG+JPEG), top-1 %d/%d correct (%.1f%%)"
      % (sys.argv[3], len(results), correct, len(results), 100.0 * correct / len(results)))
EOF
}
classify_and_score "127.0.0.1:$PORT" lenet5_fashion "image's repository"

if podman exec "$NAME" cnnserve --help | grep -q -- --metrics-address; then
  metrics=$(curl -sf --max-time 5 "http://127.0.0.1:$MPORT/metrics") || fail "no metrics on 127.0.0.1:$MPORT/metrics"
  ok=$(awk '/^cnnserve_request_success_total\{/ && /model="lenet5_fashion"/ {s += $NF} END {printf "%d", s}' <<<"$metrics")
  [ "$ok" -eq $(((200 + 15) / 16)) ] || fail "metrics count $ok successful requests, cnnctl made $(((200 + 15) / 16))"
  log "metrics on 127.0.0.1:$MPORT (container port 8002): cnnserve_request_success_total = $ok requests"
else
  log "metrics: this cnnserve has no --metrics-address yet (skipped)"
fi

# ---- a mounted repository replaces the image's --------------------------------------------------------------------
mkdir -p "$TMP/repo"
cp -r "$SRC/models/repository/lenet5_fashion" "$TMP/repo/fashion_mounted"
sed -i 's/^name: "lenet5_fashion"/name: "fashion_mounted"/' "$TMP/repo/fashion_mounted/config.pbtxt"
chmod -R a+rX "$TMP/repo"
CONTAINERS+=("$NAME-mounted")
podman run -d --init --name "$NAME-mounted" -p "127.0.0.1:$PORT2:8001" -v "$TMP/repo:/models:ro" "$IMAGE" \
  >/dev/null 2>>"$TMP/podman.err" || { cat "$TMP/podman.err"; fail "podman run failed"; }
wait_serving "127.0.0.1:$PORT2" "$NAME-mounted"
"$BUILD/bin/cnnctl" --server "127.0.0.1:$PORT2" list >"$TMP/list2.txt"
grep -q fashion_mounted "$TMP/list2.txt" && ! grep -q lenet5_fashion "$TMP/list2.txt" ||
  { cat "$TMP/list2.txt"; fail "the mounted repository did not replace the image's"; }
classify_and_score "127.0.0.1:$PORT2" fashion_mounted "mounted repository"
podman rm -f -t 0 "$NAME-mounted" >/dev/null 2>>"$TMP/podman.err"

# ---- TLS and tokens through the entrypoint's variables; the HEALTHCHECK follows them ------------------------------
bash "$SRC/deploy/secrets/make-dev-secrets.sh" "$TMP/secrets" >"$TMP/secrets.log" 2>&1 ||
  { cat "$TMP/secrets.log"; fail "deploy/secrets/make-dev-secrets.sh failed"; }
CONTAINERS+=("$NAME-tls")
podman run -d --init --name "$NAME-tls" -p "127.0.0.1:$PORT2:8001" -v "$TMP/secrets:/etc/cnnserve/tls:ro" \
  -e CNNSERVE_TLS_CERT=/etc/cnnserve/tls/tls.crt -e CNNSERVE_TLS_KEY=/etc/cnnserve/tls/tls.key \
  -e CNNSERVE_TLS_CA=/etc/cnnserve/tls/ca.crt -e CNNSERVE_AUTH_TOKEN_FILE=/etc/cnnserve/tls/tokens "$IMAGE" \
  >/dev/null 2>>"$TMP/podman.err" || { cat "$TMP/podman.err"; fail "podman run (TLS) failed"; }
wait_serving "127.0.0.1:$PORT2" "$NAME-tls" --tls-ca "$TMP/secrets/ca.crt"
podman healthcheck run "$NAME-tls" >/dev/null || fail "podman healthcheck run (TLS): unhealthy"
! "$BUILD/bin/cnnserve" --health-probe "127.0.0.1:$PORT2" >/dev/null 2>&1 || fail "a plaintext probe passed a TLS port"
$PY "$SRC/deploy/tests/grpc_routes.py" --server "127.0.0.1:$PORT2" --via replica --stubs "$BUILD/python" \
  --tls-ca "$TMP/secrets/ca.crt" --image "$TMP/images/$(sed -n '2s/,.*//p' "$TMP/images/labels.csv")" \
  --client-token-file "$TMP/secrets/client.token" --admin-token-file "$TMP/secrets/admin.token" |
  sed 's/^/  tls: /' || fail "TLS and tokens in the container"
podman rm -f -t 0 "$NAME-tls" >/dev/null 2>>"$TMP/podman.err"
log "TLS + tokens from the entrypoint's variables: HEALTHCHECK healthy over TLS, plaintext refused, tokens by scope"

# ---- SIGTERM under load: drain, exit 0 ---------------------------------------------------------------------------
$PY "$SRC/deploy/tests/grpc_load.py" --server "127.0.0.1:$PORT" --stubs "$BUILD/python" --images "$TMP/images" \
  --seconds 4 --concurrency 4 --out "$TMP/drain.json" >"$TMP/drain.out" 2>"$TMP/drain.err" &
LOAD=$!
sleep 2
TERM_TIME=$(date +%s.%N)
podman kill --signal TERM "$NAME" >/dev/null
exit_code=$(timeout 60 podman wait "$NAME") || fail "the container did not stop within 60 s of SIGTERM"
wait $LOAD || { cat "$TMP/drain.err"; fail "load client failed"; }
[ "$exit_code" = 0 ] || fail "exit code $exit_code after SIGTERM"
podman logs "$NAME" >"$TMP/server.log" 2>&1
grep -E "received Terminated|stopped" "$TMP/server.log" | sed 's/^/  log: /'
grep -q "received Terminated" "$TMP/server.log" || fail "cnnserve did not log the SIGTERM"
$PY - "$TMP/drain.json" "$TERM_TIME" <<'EOF' || fail "SIGTERM drain"
import json, sys
records, term = json.load(open(sys.argv[1]))["records"], float(sys.argv[2])
codes = {}
for r in records:
    codes[r["code"]] = codes.get(r["code"], 0) + 1
# Calls started before the signal were admitted: they must finish OK (the drain). Later ones may be refused:
# UNAVAILABLE (shutting down, or no connection) or CANCELLED (gRPC's own shutdown cancels a call it has not
# handed to cnnserve yet), as in tests/integration/load_test.cc.
before = [r for r in records if r["start"] < term - 0.2]
assert before and all(r["code"] == "OK" for r in before), \
    "calls started before the SIGTERM failed: %s" % [r for r in before if r["code"] != "OK"][:5]
bad = [r for r in records if r["code"] not in ("OK", "UNAVAILABLE", "CANCELLED")]
assert not bad, "calls ended otherwise than OK, UNAVAILABLE or CANCELLED around SIGTERM: %s" % bad[:5]
print("container_test: SIGTERM during load: %d calls %s; all %d started before the signal OK"
      % (len(records), codes, len(before)))
EOF
log "SIGTERM: the container exited $exit_code"

# ---- compose: three replicas of this image behind nginx (deploy/compose.yaml with podman-compose) ---------------
if ! command -v podman-compose >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman-compose >/dev/null ||
    { apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman-compose >/dev/null; }
fi
NGINX_IMAGE=localhost/cnnserve-nginx:$VERSION
podman build --pull=never --format docker -t "$NGINX_IMAGE" "$SRC/deploy/nginx" >"$TMP/nginx-build.log" 2>&1 ||
  { tail -n 30 "$TMP/nginx-build.log"; fail "podman build deploy/nginx failed"; }
PROJECT=cnnserve-test-$$
COMPOSE=(podman-compose -p "$PROJECT" -f "$SRC/deploy/compose.yaml")
compose_down() {
  "${COMPOSE[@]}" down >/dev/null 2>&1 || true
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
}
CLEANUP_COMPOSE=1
t=$SECONDS
CNNSERVE_SECRETS_DIR=$TMP/secrets CNNSERVE_PORT=$PORT CNNSERVE_REPLICAS=3 "${COMPOSE[@]}" up -d >"$TMP/compose.log" 2>&1 ||
  { tail -n 30 "$TMP/compose.log"; fail "podman-compose up failed"; }
REPLICA_NAMES=("${PROJECT}_cnnserve_1" "${PROJECT}_cnnserve_2" "${PROJECT}_cnnserve_3")
for c in "${REPLICA_NAMES[@]}"; do
  deadline=$((SECONDS + 120))
  until podman healthcheck run "$c" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "compose replica $c not healthy after 120 s"
    sleep 0.5
  done
done
wait_serving "127.0.0.1:$PORT" "${PROJECT}_nginx_1" --tls-ca "$TMP/secrets/ca.crt"
log "compose: 3 replicas healthy and nginx SERVING on 127.0.0.1:$PORT after $((SECONDS - t)) s"
$PY "$SRC/deploy/tests/grpc_routes.py" --server "127.0.0.1:$PORT" --via proxy --stubs "$BUILD/python" \
  --tls-ca "$TMP/secrets/ca.crt" --image "$TMP/images/$(sed -n '2s/,.*//p' "$TMP/images/labels.csv")" \
  --client-token-file "$TMP/secrets/client.token" --admin-token-file "$TMP/secrets/admin.token" |
  sed 's/^/  compose: /' || fail "compose: routes through nginx"
$PY "$SRC/deploy/tests/grpc_load.py" --server "127.0.0.1:$PORT" --stubs "$BUILD/python" --images "$TMP/images" \
  --tls-ca "$TMP/secrets/ca.crt" --token-file "$TMP/secrets/client.token" \
  --requests 600 --concurrency 6 --out "$TMP/compose.json" | sed 's/^/  compose: /'
podman logs "${PROJECT}_nginx_1" >"$TMP/compose-nginx.log" 2>/dev/null
$PY - "$TMP/compose.json" "$TMP/compose-nginx.log" <<'EOF' || fail "compose"
import collections, json, re, sys
s = json.load(open(sys.argv[1]))["summary"]
assert s["ok"] == s["calls"] == 600, "calls through nginx failed: %s" % s
assert s["correct"] >= 0.85 * s["ok"], "top-1 accuracy through compose too low: %s" % s
per = collections.Counter()
for line in open(sys.argv[2]):
    m = re.search(r'"POST /cnnserve.v1.Classifier/Classify .* upstream=(\S+) .*grpc_status=0 ', line)
    if m:
        per[m.group(1).split(",")[-1]] += 1
assert len(per) == 3 and min(per.values()) >= 0.2 * s["ok"], "calls per replica (nginx log): %s" % dict(per)
print("container_test: compose: 600 calls through nginx, %d correct, per replica %s"
      % (s["correct"], sorted(per.values())))
EOF
podman stop -t 40 "${REPLICA_NAMES[@]}" >/dev/null 2>>"$TMP/podman.err"
for c in "${REPLICA_NAMES[@]}"; do
  code=$(podman inspect --format '{{.State.ExitCode}}' "$c")
  [ "$code" = 0 ] || fail "compose replica $c exited $code on stop (SIGTERM)"
done
log "compose: replicas stopped with SIGTERM, all exited 0"
compose_down
CLEANUP_COMPOSE=0

log "PASS in $((SECONDS - T0)) s (image build ${BUILD_S} s, image size $((SIZE / 1000000)) MB)"
