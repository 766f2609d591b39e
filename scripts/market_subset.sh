#!/usr/bin/env bash
# Copies every K-th identity of a Market-1501-layout folder (train, query and gallery alike) into
# DEST, in the same layout: a smaller real-data set for a machine it must travel to (the GPU
# machines take 64 MiB with the tree; the shared split is 52 MB, the bundle 31 MiB).
#   scripts/market_subset.sh SRC_ROOT DEST_ROOT [K]     roots hold market1501/; K defaults to 2
# Example: scripts/market_subset.sh ../shared/data shared/data 2   (~26 MB; shared/ travels)
set -euo pipefail
src=$1/market1501/Market-1501-v15.09.15
dest=$2/market1501/Market-1501-v15.09.15
k=${3:-2}
[ -d "$src/bounding_box_train" ] || { echo "market_subset: no Market-1501 layout under $1/market1501" >&2; exit 1; }
mkdir -p "$dest"
ids() {  # every K-th identity, in sorted order, of folder $1 (as "NNNN_" prefixes)
  ls "$src/$1" | grep -E '^[0-9]{4}_' | cut -c1-5 | sort -u | awk -v k="$k" 'NR % k == 1'
}
ids bounding_box_train > "$dest/train.ids"
ids query > "$dest/test.ids"  # the same test identities in query and gallery
for part in bounding_box_train query bounding_box_test; do
  mkdir -p "$dest/$part"
  list=$dest/test.ids
  [ "$part" = bounding_box_train ] && list=$dest/train.ids
  ls "$src/$part" | awk 'NR == FNR { keep[$1] = 1; next } substr($0, 1, 5) in keep' "$list" - |
    while read -r f; do cp "$src/$part/$f" "$dest/$part/$f"; done
done
rm "$dest/train.ids" "$dest/test.ids"
echo "market_subset: $(find "$dest" -name '*.jpg' | wc -l) images, $(du -sh "$dest" | cut -f1) in $dest"
