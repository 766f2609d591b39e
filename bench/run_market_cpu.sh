#!/usr/bin/env bash
# The real-data CPU result (docs/benchmarks.md): the CPU recipe on ../shared/data/market1501 with
# seeds 1 and 2, BoT's tricks one at a time on top of it, all three, then seeds 3 and 4; ddp_seedN
# trains the same recipe data-parallel with 2 processes x 1 thread (global batch 64 = 2 x 32).
# Each run writes output/market_cpu/<name>/ (log.txt holds the figures). Runs are sequential:
# ~25 min each on 2 cores.
#   REID_DATA_ROOT=../shared/data bench/run_market_cpu.sh [names...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${REID_DATA_ROOT:?set REID_DATA_ROOT to the folder holding market1501/}"
out=${OUT:-output/market_cpu}
runs=("${@:-seed1 seed2 warmup pk_triplet bnneck bot_tricks seed3 seed4}")
for name in ${runs[@]}; do
  case $name in
    seed[0-9]*) args=(-c configs/osnet_x0_25_market1501_cpu.yaml --set seed="${name#seed}") ;;
    ddp_seed[0-9]*) args=(-c configs/osnet_x0_25_market1501_cpu.yaml --set seed="${name#ddp_seed}" --set threads=1
                          --nproc-per-node 2) ;;
    *) args=(-c "configs/ablations/osnet_x0_25_market1501_cpu_$name.yaml" --set seed=1) ;;
  esac
  echo "== $name"
  build/bin/reid-train "${args[@]}" --set data.root="$REID_DATA_ROOT" -o "$out/$name" 2>&1 |
    grep -E "final market1501|training done|best rank1"
done
