#!/usr/bin/env bash
# Side-by-side training throughput: LibReID's training step (channels-last, its default) vs. the
# same network in a plain PyTorch loop on the same LibTorch (setup.sh's environment: torch 2.11),
# eager NCHW (as torchreid trains), eager channels-last, and torch.compile (channels-last),
# 256x128, batch 32, 2 threads, alternating within each round.
#   bench/run_train_bench.sh [rounds] [models...]     default: 2 rounds of osnet_x0_25
#   bench/run_train_bench.sh 1 osnet_x0_25 osnet_x1_0 resnet50
# ITERATIONS (timed steps, windows of 10; default 30) applies to every model; BENCH_ARGS are
# passed to both sides, e.g. the ViT at TransReID's settings, training and inference:
#   ITERATIONS=4 BENCH_ARGS="--patch-stride 12 --window 2" bench/run_train_bench.sh 1 vit_base_patch16
#   ITERATIONS=4 BENCH_ARGS="--patch-stride 12 --window 2 --forward-only" bench/run_train_bench.sh 1 vit_base_patch16
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${REID_PYTHON:-$(sed -n 's/^REID_PYTHON:[A-Z]*=//p' build/CMakeCache.txt)}
rounds=${1:-2}
shift || true
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(osnet_x0_25)
iterations=${ITERATIONS:-30}
best() { sed -E 's/.*best ([0-9.]+).*/\1/'; }
for model in "${models[@]}"; do
  for round in $(seq "$rounds"); do
    ours=$(build/bin/bench_train --model "$model" --iterations "$iterations" ${BENCH_ARGS:-} | tail -1)
    eager=$("$python" bench/pytorch_train.py --model "$model" --iterations "$iterations" ${BENCH_ARGS:-} | tail -1)
    cl=$("$python" bench/pytorch_train.py --model "$model" --iterations "$iterations" ${BENCH_ARGS:-} --channels-last | tail -1)
    compiled=$("$python" bench/pytorch_train.py --model "$model" --iterations "$iterations" ${BENCH_ARGS:-} --channels-last --compile 2>/dev/null | tail -1)
    a=$(echo "$ours" | best); b=$(echo "$eager" | best); c=$(echo "$cl" | best); d=$(echo "$compiled" | best)
    for line in "$ours" "$eager" "$cl" "$compiled"; do echo "round $round: $line"; done
    echo "round $round: $model: LibReID / eager NCHW $(awk "BEGIN {printf \"%.2f\", $a / $b}"), / eager channels-last" \
         "$(awk "BEGIN {printf \"%.2f\", $a / $c}"), / torch.compile $(awk "BEGIN {printf \"%.2f\", $a / $d}")"
  done
done
