#!/usr/bin/env bash
# The first GPU run in one command (docs/gpu.md), sized for a lent GPU machine (16 cores, one
# GPU, ~10 minutes a command): builds LibReID against the machine's PyTorch and the dependency
# bundle, runs the CUDA tests and the other tests a GPU changes, measures the training step on
# the GPU against PyTorch eager and torch.compile side by side, and trains a short real-data run
# when the Market-1501 copy is present. Every step writes its log under OUT; a failing step is
# reported and the next one still runs, so one session yields every figure it can.
#
#   OUT=/path scripts/gpu_check.sh          (the device tool sets OUT)
# Environment: REID_DEPS_PREFIX (default deps-bundle), REID_PYTHON (default python3),
# REID_DATA_ROOT (real data; default shared/data when the checkout has it), STEPS (default
# "build tests train data").
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
python=${REID_PYTHON:-$(command -v python3)}
steps=${STEPS:-build tests train data}
[ -z "${REID_DATA_ROOT:-}" ] && [ -d shared/data/market1501 ] && export REID_DATA_ROOT=$PWD/shared/data
start=$(date +%s)
status=0
step() {  # step NAME COMMAND...: runs it with its output in $out/NAME.log
  local name=$1 t0=$(date +%s)
  shift
  if "$@" > "$out/$name.log" 2>&1; then
    echo "gpu_check: $name passed in $(( $(date +%s) - t0 )) s"
  else
    echo "gpu_check: $name FAILED in $(( $(date +%s) - t0 )) s (see $name.log):"
    tail -15 "$out/$name.log" | sed 's/^/    /'
    status=1
  fi
}
wants() { [[ " $steps " == *" $1 "* ]]; }

if wants build; then
  step build env REID_PYTHON="$python" RUN_TESTS=0 GPU_BUILD_DIR=build-gpu scripts/gpu_build.sh
  head -30 "$out/build.log" | grep -E "cores|NVIDIA|H200|driver|CUDA|python torch|LibTorch|LibReID:" | tee "$out/machine.txt"
fi
bin=build-gpu/bin
if wants tests && [ -x "$bin/reid_tests" ]; then
  # The tests a GPU changes: CUDA itself, extraction and the Embedder (half precision), export,
  # and the training paths that pick the device.
  step tests ctest --test-dir build-gpu --output-on-failure -j4 \
    -R '^(Cuda|Embedder|Extract|Trace|ReidExport|TorchScript|Trainer|DistributedTraining|TcpBackend|LossScaler)\.'
  cp build-gpu/Testing/Temporary/LastTest.log "$out/ctest_last.log" 2>/dev/null
fi
if wants train && [ -x "$bin/bench_train" ]; then
  # Side by side on the GPU, batch 64, channels-last, bf16 autocast: LibReID, PyTorch eager,
  # PyTorch torch.compile (its compilation excluded from the rate).
  train() {
    for model in osnet_x1_0 resnet50; do
      common=(--model "$model" --batch-size 64 --iterations 60)
      "$bin/bench_train" --device cuda --amp "${common[@]}" | tail -1
      "$python" bench/pytorch_train.py --device cuda --amp --channels-last "${common[@]}" | tail -1
      "$python" bench/pytorch_train.py --device cuda --amp --channels-last --compile "${common[@]}" 2>&1 | tail -1
    done
  }
  step train train
  cat "$out/train.log"
fi
if wants data && [ -x "$bin/reid-train" ]; then
  if [ -n "${REID_DATA_ROOT:-}" ] && [ -d "$REID_DATA_ROOT/market1501" ]; then
    # The CPU recipe's data and schedule on the GPU, shortened to 20 epochs (evaluated at the end).
    step data "$bin/reid-train" -c configs/osnet_x0_25_market1501_cpu.yaml --device cuda \
      --set data.root="$REID_DATA_ROOT" --set solver.max_epochs=20 --set solver.milestones=[15] \
      --set solver.eval_period=20 --set data.workers=-1 -o "$out/market_gpu"
    grep -E "final market1501|training done" "$out/data.log"
  else
    echo "gpu_check: data skipped: no market1501/ under REID_DATA_ROOT (carry shared/data or set it)"
  fi
fi
echo "gpu_check: done in $(( $(date +%s) - start )) s"
exit $status
