#!/usr/bin/env bash
# Data-parallel throughput on this machine: the CPU recipe's model and data (OSNet x0.25,
# 128x64, global batch 64, one epoch of the shared Market split, no evaluation) trained by
# 1 process x 2 threads and by 2 processes x 1 thread (--nproc-per-node 2), alternating, with the
# time each step waits for gradients after its backward (the all-reduce not hidden behind backward,
# plus waiting for the slower rank), and the cost of that all-reduce alone (bench_allreduce:
# both ranks arrive together, the model's gradient size).
#   REID_DATA_ROOT=../shared/data bench/run_distributed_bench.sh [rounds] [extra --set args...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${REID_DATA_ROOT:?set REID_DATA_ROOT to the folder holding market1501/}"
rounds=${1:-3}
shift || true
out=${OUT:-output/distributed_bench}
common=(-c configs/osnet_x0_25_market1501_cpu.yaml --set data.root="$REID_DATA_ROOT" --set data.targets=[]
        --set solver.max_epochs=1 --set solver.checkpoint_period=0 "$@")
field() {  # metrics.jsonl epoch record field
  grep '"type": "epoch"' "$1/metrics.jsonl" | sed -E "s/.*\"$2\": ([0-9.e+-]+).*/\1/"
}
for round in $(seq "$rounds"); do
  rm -rf "$out/one" "$out/two"
  build/bin/reid-train "${common[@]}" --set threads=2 -o "$out/one" > /dev/null 2>&1
  build/bin/reid-train "${common[@]}" --set threads=1 --nproc-per-node 2 -o "$out/two" > /dev/null 2>&1
  a=$(field "$out/one" images_per_second)
  b=$(field "$out/two" images_per_second)
  seconds=$(field "$out/two" seconds)
  steps=$(grep -oE "batch [0-9]+/[0-9]+" "$out/two/log.txt" | tail -1 | cut -d/ -f2)
  comm=$(grep "epoch 1 done" "$out/two/log.txt" | sed -E 's/.*, ([0-9]+)% waiting for gradients.*/\1/')
  awk -v r="$round" -v a="$a" -v b="$b" -v s="$seconds" -v n="$steps" -v c="$comm" 'BEGIN {
    printf "round %d: 1 process x 2 threads %.0f img/s | 2 processes x 1 thread %.0f img/s (ratio %.2f) | ", r, a, b, b / a
    printf "step %.0f ms, of which waiting for gradients %.1f ms (%s%%)\n", 1000 * s / n, 10 * s * c / n, c }'
done
mb=$(grep -oE "model [a-z0-9_]+: [0-9.]+M parameters" "$out/two/log.txt" | sed -E 's/.*: ([0-9.]+)M.*/\1/' |
     awk '{printf "%.2f", $1 * 4}')
build/bin/bench_allreduce --nproc 2 --mb "$mb" 2>/dev/null
