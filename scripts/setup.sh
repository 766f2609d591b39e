#!/usr/bin/env bash
# Installs the Debian packages LibReID needs (only those missing; as root or through sudo), then
# configures and builds everything into build/. Idempotent: a second run installs nothing and
# rebuilds only what changed.
#
#   scripts/setup.sh                 install + build
#   BUILD_DIR=out scripts/setup.sh   build somewhere else
#   REID_SETUP_NO_INSTALL=1 ...      skip the package step (no root needed)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config zlib1g-dev
  # libraries
  libtorch-dev libgloo-dev libopenblas0-openmp libopencv-dev libyaml-cpp-dev libspdlog-dev libcli11-dev
  libgtest-dev libmatio-dev
  # reid-export's parity tests: OpenCV's DNN module runs the ONNX files
  libopencv-dnn-dev
  # the standing checks (scripts/sanitize.sh): clang, its sanitizer runtimes and libFuzzer
  clang libclang-rt-14-dev libfuzzer-14-dev
  # Python side: weight-interop tests and the side-by-side baselines in bench/
  python3 python3-numpy python3-torch python3-torchvision python3-pil
)

# Node.js runs onnxruntime's CPU build (npm onnxruntime-node) for the ONNX parity tests; a
# Node.js that did not come from Debian (e.g. NodeSource's) is used as it is.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

if [ -z "${REID_SETUP_NO_INSTALL:-}" ]; then
  missing=()
  for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
      SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo)
    else
      echo "error: missing packages (${missing[*]}) and neither root nor sudo is available" >&2
      exit 1
    fi
    echo "setup: installing ${missing[*]}"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"
  fi
fi

# Debian's libtorch uses whichever BLAS the alternatives system points at; make sure it is
# OpenBLAS (the reference BLAS makes matrix products ~25x slower).
if [ -z "${REID_SETUP_NO_INSTALL:-}" ] && command -v update-alternatives >/dev/null 2>&1; then
  blas=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas-openmp || true)
  if [ -n "$blas" ] && [ "$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null)" != "$blas" ]; then
    if [ "$(id -u)" -eq 0 ]; then
      update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas" >/dev/null
    else
      sudo update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas" >/dev/null
    fi
  fi
fi

generator=()
if command -v ninja >/dev/null 2>&1 && [ ! -f "$BUILD_DIR/Makefile" ]; then
  generator=(-G Ninja)
fi
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)"

# onnxruntime's CPU build for the ONNX parity tests and bench/run_embed_bench.sh: the npm package
# onnxruntime-node holds libonnxruntime.so.1. --ignore-scripts: its install script only fetches
# GPU extras from a host these machines cannot reach. Without it the parity tests skip, saying so.
ORT_VERSION=1.30.0
ORT_DIR="$BUILD_DIR/onnxruntime"
if command -v npm >/dev/null 2>&1; then
  installed=$(node -p "require(require('path').resolve('$ORT_DIR/node_modules/onnxruntime-node/package.json')).version" 2>/dev/null || true)
  if [ "$installed" != "$ORT_VERSION" ]; then
    echo "setup: installing onnxruntime-node $ORT_VERSION into $ORT_DIR"
    npm install --prefix "$ORT_DIR" --no-audit --no-fund --no-save --ignore-scripts \
      "onnxruntime-node@$ORT_VERSION" >/dev/null \
      || echo "warning: npm could not install onnxruntime-node; the ONNX runtime parity tests will skip" >&2
  fi
else
  echo "warning: no npm; the ONNX runtime parity tests will skip" >&2
fi
