#!/usr/bin/env bash
# deploy/kserve offline (no cluster): yamllint, then tests/deploy/check_kserve.py on the manifests as committed
# (with its broken copies, each of which must be rejected) and, when kubectl is installed, on what
# `kubectl kustomize deploy/kserve` renders. Registered with CTest as deploy_kserve (tests/deploy/CMakeLists.txt).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
cd "$SRC"
yamllint --strict -c deploy/tests/yamllint.yaml deploy/kserve
echo "kserve_manifests_test: yamllint: OK ($(ls deploy/kserve/*.yaml | wc -l) files)"
$PY tests/deploy/check_kserve.py "$SRC" --self-test
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  TMP=$(mktemp -d /tmp/cnnserve-kserve.XXXXXX)
  trap 'rm -rf "$TMP"' EXIT
  kubectl kustomize deploy/kserve >"$TMP/rendered.yaml"
  $PY tests/deploy/check_kserve.py "$SRC" --rendered "$TMP/rendered.yaml"
else
  echo "kserve_manifests_test: SKIPPED the kubectl kustomize rendering (no kubectl here); the checker's own assembly ran"
fi
