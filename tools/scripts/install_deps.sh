#!/usr/bin/env bash
# Installs the Debian packages cnnserve needs, only those missing. Idempotent; silent when all are present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libssl-dev openssl
  libdnnl-dev libopencv-dev libpng-dev zlib1g-dev libspdlog-dev libgtest-dev libgmock-dev libbenchmark-dev libonnx-dev
  ocl-icd-opencl-dev opencl-headers prometheus-cpp-dev libcpp-httplib-dev nlohmann-json3-dev
  python3-torch python3-torchvision python3-onnx python3-numpy python3-grpcio python3-pil
  python3-yaml python3-matplotlib
  dataset-fashion-mnist libonnx-testdata
  nginx-light yamllint curl
  nodejs npm chromium
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# nodejs/npm may come from elsewhere (e.g. a preinstalled toolchain): accept any working node + npm.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}")
  missing=("${missing[@]/npm}")
fi
filtered=()
for p in "${missing[@]}"; do [ -n "$p" ] && filtered+=("$p"); done

if [ ${#filtered[@]} -gt 0 ]; then
  echo "install_deps: installing ${filtered[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
  echo "install_deps: done"
fi

# The browser test's npm packages (playwright-core only: it drives Debian's chromium and downloads no browser),
# exactly as package-lock.json pins them, into tests/http/browser/node_modules (git-ignored). Again only when the
# lock file is newer than what npm installed last.
BROWSER_TEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/http/browser"
if [ "$BROWSER_TEST_DIR/package-lock.json" -nt "$BROWSER_TEST_DIR/node_modules/.package-lock.json" ]; then
  echo "install_deps: npm ci in $BROWSER_TEST_DIR"
  (cd "$BROWSER_TEST_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
