#!/usr/bin/env bash
# Side-by-side training throughput: LibReID's OSNet x0.25 step vs. the same network in a plain
# PyTorch loop (Debian's python3-torch, same LibTorch build), 256x128, batch 32, 2 threads.
# The PyTorch baseline runs NCHW as torchreid does, and also channels-last for reference.
#   bench/run_train_bench.sh [rounds]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${REID_PYTHON:-/usr/bin/python3}
for round in $(seq "${1:-2}"); do
  ours=$(build/bin/bench_train --iterations 30 | tail -1)
  nchw=$("$python" bench/pytorch_osnet.py --iterations 41 | tail -1)
  cl=$("$python" bench/pytorch_osnet.py --iterations 41 --channels-last | tail -1)
  a=$(echo "$ours" | sed -E 's/.*best ([0-9.]+).*/\1/')
  b=$(echo "$nchw" | sed -E 's/.*best ([0-9.]+).*/\1/')
  c=$(echo "$cl" | sed -E 's/.*best ([0-9.]+).*/\1/')
  echo "round $round: $ours"
  echo "round $round: $nchw"
  echo "round $round: $cl"
  echo "round $round: ratio vs PyTorch NCHW (torchreid's way) $(awk "BEGIN {printf \"%.2f\", $a / $b}"), vs PyTorch channels-last $(awk "BEGIN {printf \"%.2f\", $a / $c}")"
done
