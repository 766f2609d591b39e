#!/usr/bin/env bash
# Side-by-side evaluation benchmark: LibReID's streaming evaluator vs. the full-matrix evaluation
# of torchreid's Python path (bench/numpy_eval.py), on the same synthetic features, with the
# peak memory of each process (GNU time).
#   bench/run_eval_bench.sh [market|msmt] [--rerank]
# The MSMT17-sized baseline needs ~20 GB and minutes; it is skipped unless BASELINE_MSMT=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scenario=${1:-market}
shift || true
python=${REID_PYTHON:-$(sed -n 's/^REID_PYTHON:[A-Z]*=//p' build/CMakeCache.txt)}
dir=${TMPDIR:-/tmp}/libreid-eval-$scenario
mkdir -p "$dir"
[ -f "$dir/qf.npy" ] || build/bin/bench_eval --scenario "$scenario" --write "$dir"
peak() { grep "Maximum resident" | awk '{printf "%.0f MiB", $6 / 1024}'; }
for round in 1 2; do
  out=$( { /usr/bin/time -v build/bin/bench_eval --features "$dir" "$@" ; } 2>&1 )
  echo "round $round: $(echo "$out" | grep '^libreid' ) [GNU time peak: $(echo "$out" | peak)]"
  if [ "$scenario" = market ] || [ "${BASELINE_MSMT:-0}" = 1 ]; then
    out=$( { /usr/bin/time -v "$python" bench/numpy_eval.py "$dir" "$@" ; } 2>&1 )
    echo "round $round: $(echo "$out" | grep '^baseline') [GNU time peak: $(echo "$out" | peak)]"
  fi
done
echo "metrics (libreid):  $(build/bin/bench_eval --features "$dir" "$@" | grep '^mAP')"
if [ "$scenario" = market ] || [ "${BASELINE_MSMT:-0}" = 1 ]; then
  echo "metrics (baseline): $("$python" bench/numpy_eval.py "$dir" "$@" | grep '^mAP')"
fi
