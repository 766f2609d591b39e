#!/usr/bin/env bash
# The split-averaged protocol of iLIDS-VID and PRID2011: trains and tests one model per random
# person split (data.video.split_id 0 .. N-1) and prints each split's figures and their mean, as
# the literature reports them (CMC; mAP too).
#
#   scripts/video_splits.sh CONFIG OUTPUT_ROOT [SPLITS] [reid-train options, e.g. --set k=v]
#
# Each split trains into OUTPUT_ROOT/split_<i> (a finished split is not trained again, so the
# command can be re-run after an interruption: an unfinished one resumes). The splits come from
# the splits file the dataset parser writes (data.video.splits_file, or
# libreid_splits_<N>x_seed<S>.txt in the dataset's folder), so every split of a repeated run is
# the same. The table is also written to OUTPUT_ROOT/splits_summary.txt.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
config=$1
root=$2
splits=${3:-10}
shift $(($# >= 3 ? 3 : 2))
here=$(cd "$(dirname "$0")/.." && pwd)
train=${REID_TRAIN:-$here/build/bin/reid-train}
[[ -x $train ]] || { echo "error: $train not found (build first, or set REID_TRAIN)" >&2; exit 1; }
[[ $splits =~ ^[0-9]+$ && $splits -ge 1 ]] || { echo "error: SPLITS must be a positive number (got '$splits')" >&2; exit 2; }
mkdir -p "$root"
for ((i = 0; i < splits; i++)); do
  out=$root/split_$i
  if [[ -f $out/model_final.pt ]]; then
    echo "split $i: done before ($out)"
    continue
  fi
  resume=()
  [[ -f $out/checkpoints/last.ckpt ]] && resume=(--resume)
  echo "split $i: training into $out"
  "$train" -c "$config" -o "$out" --set "data.video.split_id=$i" --set "data.video.num_splits=$splits" \
    "${resume[@]}" "$@" > "$out.log" 2>&1 || { echo "error: split $i failed, see $out.log" >&2; exit 1; }
done
# The last evaluation of each split's run (metrics.jsonl), then the mean.
{
  printf '%-8s %8s %8s %8s %8s %8s\n' split rank1 rank5 rank10 rank20 mAP
  for ((i = 0; i < splits; i++)); do
    line=$(grep '"type": "evaluation"' "$root/split_$i/metrics.jsonl" | tail -n 1)
    [[ -n $line ]] || { echo "error: no evaluation in $root/split_$i/metrics.jsonl" >&2; exit 1; }
    values=()
    for key in rank1 rank5 rank10 rank20 mAP; do
      values+=("$(sed -n "s/.*\"$key\": \([0-9.eE+-]*\).*/\1/p" <<< "$line")")
    done
    printf '%-8s %8s %8s %8s %8s %8s\n' "$i" "${values[@]}"
  done
} | awk 'NR == 1 { print; next }
         { print; for (c = 2; c <= 6; ++c) sum[c] += $c; n++ }
         END { printf "%-8s", "mean"; for (c = 2; c <= 6; ++c) printf " %7.2f%%", 100 * sum[c] / n; printf "\n" }' \
  | tee "$root/splits_summary.txt"
