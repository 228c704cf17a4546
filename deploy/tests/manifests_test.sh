#!/usr/bin/env bash
# Manifest test (no cluster, no containers): yamllint on deploy/k8s and deploy/compose.yaml, the invariants of
# deploy/tests/check_manifests.py on the base as the checker assembles it and, when kubectl is installed, on what
# `kubectl kustomize` renders offline for the base and for an overlay with the components (mtls,
# poll-repository); nginx -t on deploy/nginx with a PKI made by deploy/secrets/make-dev-secrets.sh; and proof that
# the invariants bite: each of a few broken copies of deploy/ must be rejected. Also a syntax check of the deploy
# scripts. Installs yamllint/python3-yaml if missing.
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
sh -n deploy/container/healthcheck.sh
for s in deploy/tests/*.sh deploy/secrets/*.sh; do bash -n "$s"; done
$PY -c 'import ast, sys
for f in sys.argv[1:]: ast.parse(open(f).read(), f)' deploy/tests/*.py
log "shell/Python syntax: OK"

$PY deploy/tests/check_manifests.py "$SRC"

TMP=$(mktemp -d /tmp/cnnserve-manifests.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# What kubectl renders (offline): the base, and an overlay with both components.
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  kubectl kustomize deploy/k8s >"$TMP/base.yaml"
  $PY deploy/tests/check_manifests.py "$SRC" --rendered "$TMP/base.yaml" | sed 's/^/base rendered: /'
  mkdir -p "$TMP/overlay"
  rel=$(realpath --relative-to="$TMP/overlay" deploy/k8s)
  printf 'resources: [%s]\ncomponents: [%s/components/mtls, %s/components/poll-repository]\n' "$rel" "$rel" "$rel" \
    >"$TMP/overlay/kustomization.yaml"
  kubectl kustomize "$TMP/overlay" >"$TMP/overlay.yaml"
  $PY deploy/tests/check_manifests.py "$SRC" --rendered "$TMP/overlay.yaml" \
    --expect-arg=--tls-client-ca=/etc/cnnserve/client-ca/ca.crt --expect-arg=--model-control-mode=poll \
    --expect-arg=--strict-readiness=false |
    sed 's/^/overlay (mtls, poll-repository) rendered: /'
  grep -q 'claimName: cnnserve-models' "$TMP/overlay.yaml" || fail "poll-repository: no cnnserve-models volume"
  ! grep -q 'initContainers' "$TMP/overlay.yaml" || fail "poll-repository: the init container is still there"
  # ... and the rendered check bites: the mtls component without the probes' client certificate.
  cp -r deploy/k8s "$TMP/k8s-broken"
  sed -i '/^    - --tls-cert$/d; /^    - \/etc\/cnnserve\/probe\/tls.crt$/d' \
    "$TMP/k8s-broken/components/mtls/deployment-patch.yaml"
  mkdir -p "$TMP/overlay-broken"
  printf 'resources: [../k8s-broken]\ncomponents: [../k8s-broken/components/mtls]\n' \
    >"$TMP/overlay-broken/kustomization.yaml"
  kubectl kustomize "$TMP/overlay-broken" >"$TMP/overlay-broken.yaml"
  if $PY deploy/tests/check_manifests.py "$SRC" --rendered "$TMP/overlay-broken.yaml" >"$TMP/out" 2>&1; then
    cat "$TMP/out"; fail "check_manifests.py accepted mTLS probes without a client certificate"
  fi
  log "rejected as it should: rendered mtls overlay whose probes lack --tls-cert ($(grep -m1 'FAIL: ' "$TMP/out" |
    sed 's/.*FAIL: //'))"
  kustomize=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')
  log "kubectl (kustomize ${kustomize:-?}) renders the base and the overlay"
else
  log "SKIPPED the kubectl kustomize rendering (no kubectl with kustomize here); the checker's own assembly ran"
fi

# nginx accepts deploy/nginx with real certificates (the shipped listen.conf/backend.conf, paths moved).
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -x "$NGINX" ]; then
  bash deploy/secrets/make-dev-secrets.sh "$TMP/pki" >/dev/null
  mkdir -p "$TMP/nginx"
  cp deploy/nginx/nginx.conf "$TMP/nginx/"
  sed "s#/run/secrets/#$TMP/pki/#" deploy/nginx/backend.conf >"$TMP/nginx/backend.conf"
  sed "s#/run/secrets/#$TMP/pki/#; s#^listen 8001 #listen 127.0.0.1:8001 #" deploy/nginx/listen.conf \
    >"$TMP/nginx/listen.conf"
  echo "server 127.0.0.1:8001;" >"$TMP/nginx/upstream.conf"
  "$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e stderr -t -g "pid $TMP/nginx/nginx.pid;" \
    >"$TMP/nginx.out" 2>&1 || { cat "$TMP/nginx.out"; fail "nginx -t rejects deploy/nginx"; }
  log "nginx -t: OK (deploy/nginx with a make-dev-secrets.sh PKI)"
else
  log "SKIPPED nginx -t (no nginx; deploy/tests/scale_out_test.sh installs it)"
fi

# The checker must reject broken manifests: a copy of the files it reads, one mutation at a time.
mutate() {  # description, file, sed expression
  rm -rf "$TMP/src" && mkdir -p "$TMP/src/deploy"
  cp CMakeLists.txt Dockerfile .dockerignore "$TMP/src/"
  cp -r server "$TMP/src/"
  cp -r deploy/k8s deploy/container deploy/nginx deploy/tests deploy/compose.yaml "$TMP/src/deploy/"
  sed -i "$3" "$TMP/src/$2"
  cmp -s "$2" "$TMP/src/$2" && fail "mutation '$1' changed nothing in $2"
  if $PY deploy/tests/check_manifests.py "$TMP/src" >"$TMP/out" 2>&1; then
    cat "$TMP/out"; fail "check_manifests.py accepted: $1"
  fi
  log "rejected as it should: $1 ($(grep -m1 'FAIL: ' "$TMP/out" | sed 's/.*FAIL: //'))"
}
mutate "readiness probe on another port" deploy/k8s/deployment.yaml \
  '/readinessProbe:/,/periodSeconds/ s/"127.0.0.1:8001"/"127.0.0.1:9001"/'
mutate "image not the one the Dockerfile builds" deploy/k8s/kustomization.yaml 's/newTag: .*/newTag: latest/'
mutate "no CPU request (HPA)" deploy/k8s/deployment.yaml '0,/cpu: "2"/ s/cpu: "2"/memory2: "2"/'
mutate "root security context" deploy/k8s/deployment.yaml 's/runAsNonRoot: true/runAsNonRoot: false/'
mutate "grace period shorter than preStop + drain" deploy/k8s/deployment.yaml \
  's/terminationGracePeriodSeconds: 45/terminationGracePeriodSeconds: 30/'
mutate "resource missing from kustomization" deploy/k8s/kustomization.yaml 's/- pdb.yaml/- pdb-missing.yaml/'
mutate "Service selecting no pods" deploy/k8s/service-headless.yaml \
  '0,/component: server/! s/app.kubernetes.io\/component: server/app.kubernetes.io\/component: other/'
mutate "unknown cnnserve flag" deploy/k8s/deployment.yaml 's/--log-level=info/--log-levle=info/'
mutate "no TLS certificate" deploy/k8s/deployment.yaml '/- --tls-cert=/d'
mutate "probe without --tls-ca" deploy/k8s/deployment.yaml \
  '0,/--tls-ca, \/etc/ s/, --tls-ca, \/etc\/cnnserve\/tls\/ca.crt//'
mutate "token file not from a Secret mount" deploy/k8s/deployment.yaml \
  's/mountPath: \/etc\/cnnserve\/auth$/mountPath: \/etc\/auth/'
mutate "Secret readable by every user" deploy/k8s/deployment.yaml \
  '0,/defaultMode: 0440/ s/defaultMode: 0440/defaultMode: 0444/'
mutate "metrics open to every namespace" deploy/k8s/networkpolicy.yaml \
  's/kubernetes.io\/metadata.name: monitoring/kubernetes.io\/metadata.name: default/'
mutate "NetworkPolicy rule without ports" deploy/k8s/networkpolicy.yaml 's/^      ports:$/      notports:/'
mutate "model control routed by nginx" deploy/nginx/nginx.conf \
  's/(ModelInfer|ModelStreamInfer|/(ModelInfer|RepositoryModelLoad|ModelStreamInfer|/'
mutate "model control by a prefix route in nginx" deploy/nginx/nginx.conf \
  's/(ServerMetadata|ModelMetadata|ModelConfig)\$"/"/'
mutate "nginx to TLS replicas in cleartext" deploy/nginx/backend.conf 's/grpcs:/grpc:/'
mutate "compose health check without TLS" deploy/compose.yaml 's/ --tls-ca \/run\/secrets\/ca.crt//'
mutate "compose key not a secret" deploy/compose.yaml \
  's/"--tls-key=\/run\/secrets\/tls.key"/"--tls-key=\/etc\/tls.key"/'
mutate "image HEALTHCHECK without TLS" deploy/container/healthcheck.sh 's/ --tls-ca "\$CNNSERVE_TLS_CA"//'
log "PASS"
