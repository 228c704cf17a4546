#!/usr/bin/env bash
# Install the npm peer runtime (onnxruntime-node) into bench/peers/node_modules.
# Idempotent: does nothing if the pinned version is already installed and loads.
#
# --ignore-scripts skips onnxruntime-node's postinstall, which would otherwise try
# to download CUDA/TensorRT extras from outside the npm registry. The CPU native
# binding (bin/napi-v*/linux/x64/onnxruntime_binding.node + libonnxruntime.so.*)
# ships inside the npm tarball itself, so the CPU execution provider works without it.
set -euo pipefail

ORT_VERSION=1.30.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

NODE="${NODE:-$(command -v node || echo /usr/bin/node)}"
NPM="${NPM:-$(command -v npm || echo /usr/bin/npm)}"

installed_version() {
  "$NODE" -e '
    try {
      const p = require(require("path").join(process.argv[1], "node_modules/onnxruntime-node/package.json"));
      process.stdout.write(p.version);
    } catch (e) { process.exit(1); }' "$HERE" 2>/dev/null || true
}

# Loads the native binding and runs a 1-node model: proves the CPU library works.
smoke_test() {
  "$NODE" "$HERE/ort_run.js" --selftest --threads 1
}

if [[ "$(installed_version)" == "$ORT_VERSION" ]]; then
  echo "onnxruntime-node@$ORT_VERSION already installed in $HERE/node_modules"
  smoke_test
  exit 0
fi

echo "installing onnxruntime-node@$ORT_VERSION into $HERE/node_modules"
"$NPM" install --ignore-scripts --no-audit --no-fund --loglevel=error

got="$(installed_version)"
if [[ "$got" != "$ORT_VERSION" ]]; then
  echo "error: expected onnxruntime-node@$ORT_VERSION, found '${got:-nothing}'" >&2
  exit 1
fi
smoke_test
