#!/usr/bin/env bash
# Builds LibReID against a Python's PyTorch (LibTorch 2.11 with CUDA, as on the GPU machines) and
# the dependency bundle (scripts/bundle_deps.sh), with all cores, then runs the test suite. Prints
# the machine first: GPU model, driver, CUDA, cuDNN and NCCL versions, LibTorch version and ABI.
#
#   scripts/gpu_build.sh                 build-gpu/ against deps-bundle/ and python3's torch
#   REID_PYTHON=~/.cache/libreid/env-torch2.11.0-py3.11/bin/python scripts/gpu_build.sh
#                                        the same on a CPU machine, against setup.sh's environment
#                                        (CUDA compiled in, the CUDA tests skip): the proof that the
#                                        GPU run is one command
# Environment: REID_DEPS_PREFIX (bundle, default deps-bundle), GPU_BUILD_DIR (default build-gpu),
# REID_PYTHON (the Python whose torch is LibTorch, default python3), TORCH_PREFIX (a LibTorch CMake
# prefix instead, e.g. an official LibTorch archive), TEST_JOBS (ctest -j, default 4: the tests
# share one GPU), RUN_TESTS=0 (build only), CTEST_ARGS (extra ctest arguments, e.g. "-R Cuda"),
# REID_DATA_ROOT (real-data tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bundle=$(realpath -m "${REID_DEPS_PREFIX:-deps-bundle}")
build=${GPU_BUILD_DIR:-build-gpu}
jobs=$(nproc)
start=$(date +%s)

if [ ! -f "$bundle/VERSIONS" ]; then
  echo "gpu_build: no dependency bundle at $bundle: build it with scripts/bundle_deps.sh on a Debian machine" >&2
  exit 1
fi

echo "== machine"
echo "$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(. /etc/os-release 2> /dev/null && echo "$PRETTY_NAME"), $(uname -r)"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader || true
  nvidia-smi | sed -n 's/.*\(CUDA Version: [0-9.]*\).*/driver \1/p' | head -1
else
  echo "no nvidia-smi: no GPU here (the CUDA tests will skip)"
fi
command -v nvcc > /dev/null && nvcc --version | tail -1 || echo "no nvcc on PATH"
echo "$(cmake --version | head -1); $(c++ --version | head -1)"

echo "== LibTorch"
python=${REID_PYTHON:-$(command -v python3)}
if [ -z "${TORCH_PREFIX:-}" ]; then
  TORCH_PREFIX=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  "$python" - <<'EOF'
import torch
print(f"python torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'none'}, "
      f"NCCL {'.'.join(map(str, torch.cuda.nccl.version())) if torch.version.cuda else 'none'}, "
      f"cxx11 ABI {int(torch.compiled_with_cxx11_abi())}, "
      f"GPUs {torch.cuda.device_count()}: {[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}")
if not torch.compiled_with_cxx11_abi():
    raise SystemExit("gpu_build: this LibTorch uses the old C++ ABI (_GLIBCXX_USE_CXX11_ABI=0); the "
                     "bundle is built with the new one: rebuild it with that flag changed")
EOF
fi
echo "LibTorch CMake prefix: $TORCH_PREFIX"
echo "bundle: $(tr '\n' ';' < "$bundle/VERSIONS")"

echo "== configure"
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DREID_PYTHON:FILEPATH="$python" \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DREID_DEPS_PREFIX="$bundle" -DREID_WITH_MATIO=OFF \
  -DREID_REQUIRE_CUDA=ON -DREID_USE_CCACHE=ON -DREID_BUILD_BENCH=ON ${GPU_CMAKE_ARGS:-}
echo "== build ($jobs jobs)"
cmake --build "$build" --parallel "$jobs"
echo "gpu_build: built in $(( $(date +%s) - start )) s"
# What LibReID itself links (not LibTorch's own dependencies) must come from the bundle.
if readelf -d "$build"/lib/libreid.so* "$build/bin/reid-train" | grep NEEDED | grep -E "opencv|yaml|gtest|libz\."; then
  echo "gpu_build: LibReID links a machine library the bundle should have provided" >&2
  exit 1
fi

if [ "${RUN_TESTS:-1}" != 0 ]; then
  echo "== tests"
  # The interop and ONNX parity tests need torchvision and onnxruntime beside torch.
  if ! "$python" -c 'import torch, torchvision, onnxruntime' 2> /dev/null; then
    echo "gpu_build: $python lacks torchvision or onnxruntime: the weight-interop and ONNX parity tests are skipped"
    export REID_SKIP_PYTHON_TESTS=1
  fi
  t0=$(date +%s)
  # shellcheck disable=SC2086
  ctest --test-dir "$build" --output-on-failure -j"${TEST_JOBS:-4}" ${CTEST_ARGS:-}
  echo "gpu_build: tests in $(( $(date +%s) - t0 )) s"
fi
echo "gpu_build: done in $(( $(date +%s) - start )) s"
