#!/usr/bin/env bash
# Manifest test (no cluster, no containers): yamllint on deploy/k8s and deploy/compose.yaml, the invariants of
# deploy/tests/check_manifests.py, and proof that the invariants bite: each of a few broken copies of deploy/
# must be rejected. Also a syntax check of the deploy shell scripts. Installs yamllint/python3-yaml if missing.
# Usage: deploy/tests/manifests_test.sh      (registered with CTest: tests/deploy, label deploy)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
log() { echo "manifests_test: $*"; }
fail() { echo "manifests_test: FAIL: $*" >&2; exit 1; }

need=()
command -v yamllint >/dev/null || need+=(yamllint)
$PY -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi

cd "$SRC"
yamllint --strict -c deploy/tests/yamllint.yaml deploy/k8s deploy/compose.yaml deploy/tests/yamllint.yaml
log "yamllint: OK ($(ls deploy/k8s/*.yaml | wc -l) files in deploy/k8s, deploy/compose.yaml)"

sh -n deploy/container/entrypoint.sh
for s in deploy/tests/*.sh; do bash -n "$s"; done
$PY -c 'import ast, sys
for f in sys.argv[1:]: ast.parse(open(f).read(), f)' deploy/tests/grpc_load.py deploy/tests/check_manifests.py
log "shell/Python syntax: OK"

$PY deploy/tests/check_manifests.py "$SRC"

# The checker must reject broken manifests: a copy of the files it reads, one mutation at a time.
TMP=$(mktemp -d /tmp/cnnserve-manifests.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mutate() {  # description, file, sed expression
  rm -rf "$TMP/src" && mkdir -p "$TMP/src/server" "$TMP/src/deploy"
  cp CMakeLists.txt Dockerfile .dockerignore "$TMP/src/"
  cp server/main.cc "$TMP/src/server/"
  cp -r deploy/k8s deploy/container deploy/nginx deploy/tests deploy/compose.yaml "$TMP/src/deploy/"
  sed -i "$3" "$TMP/src/$2"
  cmp -s "$2" "$TMP/src/$2" && fail "mutation '$1' changed nothing in $2"
  if $PY deploy/tests/check_manifests.py "$TMP/src" >"$TMP/out" 2>&1; then
    cat "$TMP/out"; fail "check_manifests.py accepted: $1"
  fi
  log "rejected as it should: $1 ($(grep -m1 'FAIL: ' "$TMP/out" | sed 's/.*FAIL: //'))"
}
mutate "readiness probe on another port" deploy/k8s/deployment.yaml \
  '/readinessProbe:/,/service:/ s/port: 8001/port: 9001/'
mutate "image not the one the Dockerfile builds" deploy/k8s/kustomization.yaml 's/newTag: .*/newTag: latest/'
mutate "no CPU request (HPA)" deploy/k8s/deployment.yaml '0,/cpu: "2"/ s/cpu: "2"/memory2: "2"/'
mutate "root security context" deploy/k8s/deployment.yaml 's/runAsNonRoot: true/runAsNonRoot: false/'
mutate "grace period shorter than preStop + drain" deploy/k8s/deployment.yaml \
  's/terminationGracePeriodSeconds: 45/terminationGracePeriodSeconds: 30/'
mutate "resource missing from kustomization" deploy/k8s/kustomization.yaml 's/- pdb.yaml/- pdb-missing.yaml/'
mutate "Service selecting no pods" deploy/k8s/service-headless.yaml \
  '0,/component: server/! s/app.kubernetes.io\/component: server/app.kubernetes.io\/component: other/'
mutate "unknown cnnserve flag" deploy/k8s/deployment.yaml 's/--log-level=info/--log-levle=info/'
log "PASS"
