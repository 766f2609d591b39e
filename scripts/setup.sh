#!/usr/bin/env bash
# Installs what LibReID needs and builds it into build/. Idempotent: a second run installs
# nothing and rebuilds only what changed.
#
#   scripts/setup.sh           Debian packages, the LibTorch environment, then the library and the
#                              executables (what the quickstart needs)
#   scripts/setup.sh --all     the same, then everything else: tests, benchmarks, examples
#   BUILD_DIR=out scripts/setup.sh      build somewhere else
#   REID_SETUP_NO_INSTALL=1 ...         skip the Debian package step (no root needed)
#   REID_ENV_DIR=/path ...              where the LibTorch environment lives (see below)
#
# LibTorch is PyPI's torch, the CUDA 13.0 build the GPU machines run, installed with torchvision
# (weight-interop tests, baselines), onnxruntime (ONNX parity tests, baselines) and pytest (the
# Python package's tests) into a Python virtual environment that this script owns. It lives
# outside the source tree, keyed by the versions it holds, so every clone on the machine shares
# one download (~3.5 GB, of which CUDA's libraries are most):
#   ${XDG_CACHE_HOME:-~/.cache}/libreid/env-torch<version>-py<python>
# Everything else comes from Debian 12's packages.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
targets=(reid-train reid-test reid-eval reid-extract reid-export)
for arg in "$@"; do
  case $arg in
    --all) targets=(all) ;;
    *) echo "usage: scripts/setup.sh [--all]" >&2; exit 2 ;;
  esac
done

# The versions LibTorch comes in (the GPU machines run torch 2.11.0+cu130).
TORCH_VERSION=2.11.0
TORCHVISION_VERSION=0.26.0
ONNXRUNTIME_VERSION=1.32.0
PYTHON_PACKAGES=("torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION"
                 numpy==2.4.6 pillow==13.0.0 pytest==9.2.0)

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config zlib1g-dev
  # libraries
  libopencv-dev libyaml-cpp-dev libcli11-dev libgtest-dev libmatio-dev
  # reid-export's parity tests: OpenCV's DNN module runs the ONNX files
  libopencv-dnn-dev
  # the standing checks (scripts/sanitize.sh): clang, its sanitizer runtimes and libFuzzer
  clang libclang-rt-14-dev libfuzzer-14-dev
  # the LibTorch environment
  python3 python3-venv
)

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
      "${missing[@]}" >/dev/null
  fi
fi

# ---- the LibTorch environment -------------------------------------------------------------------
# The interpreter: python3 on PATH when it can make a virtual environment, else Debian's.
python=""
for candidate in "$(command -v python3 || true)" /usr/bin/python3; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "error: no Python >= 3.10 with the venv module (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
pyversion=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
ENV_DIR=${REID_ENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/libreid/env-torch$TORCH_VERSION-py$pyversion}
stamp="$ENV_DIR/.libreid-packages"
wanted=$(printf '%s\n' "${PYTHON_PACKAGES[@]}")
if [ ! -x "$ENV_DIR/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: LibTorch environment $ENV_DIR (${PYTHON_PACKAGES[*]})"
  mkdir -p "$(dirname "$ENV_DIR")"
  # Two setups at once (two clones, one machine) must not install into one environment together.
  exec 9> "$ENV_DIR.lock"
  flock 9
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    [ -x "$ENV_DIR/bin/python" ] || "$python" -m venv "$ENV_DIR"
    t0=$(date +%s)
    "$ENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --progress-bar off "${PYTHON_PACKAGES[@]}"
    echo "setup: installed in $(( $(date +%s) - t0 )) s ($(du -sh "$ENV_DIR" | cut -f1))"
    printf '%s\n' "$wanted" > "$stamp"
  fi
  flock -u 9
fi
REID_PYTHON="$ENV_DIR/bin/python"

# ---- configure and build ------------------------------------------------------------------------
generator=()
if command -v ninja >/dev/null 2>&1 && [ ! -f "$BUILD_DIR/Makefile" ]; then
  generator=(-G Ninja)
fi
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] || ! grep -qx "REID_PYTHON:[A-Z]*=$REID_PYTHON" "$BUILD_DIR/CMakeCache.txt"; then
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DREID_PYTHON:FILEPATH="$REID_PYTHON" \
    -DREID_REQUIRE_CUDA=ON
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target "${targets[@]}"
