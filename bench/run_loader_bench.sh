#!/usr/bin/env bash
# Side-by-side loader benchmark: LibReID vs torchvision + PIL on the same Market-1501 images,
# same pipeline, same worker count, alternating so that machine noise hits both.
#   bench/run_loader_bench.sh [workers] [rounds]      (REID_DATA_ROOT must hold market1501/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
workers=${1:-2}
rounds=${2:-2}
: "${REID_DATA_ROOT:?set REID_DATA_ROOT to the folder holding market1501/}"
python=${REID_PYTHON:-$(sed -n 's/^REID_PYTHON:[A-Z]*=//p' build/CMakeCache.txt)}
for round in $(seq "$rounds"); do
  ours=$(build/bin/bench_loader --workers "$workers" --passes 3 | tail -1)
  theirs=$("$python" bench/torchvision_loader.py --workers "$workers" --passes 3 | tail -1)
  echo "round $round: $ours"
  echo "round $round: $theirs"
  a=$(echo "$ours" | sed -E 's/.*best=([0-9]+).*/\1/')
  b=$(echo "$theirs" | sed -E 's/.*best=([0-9]+).*/\1/')
  echo "round $round: ratio libreid / torchvision = $(awk "BEGIN {printf \"%.2f\", $a / $b}")"
done
