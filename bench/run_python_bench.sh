#!/usr/bin/env bash
# libreid against the Python frameworks, side by side in one Python process (bench/python_bench.py):
# evaluation vs. fast-reid's Cython evaluate_cy (torchreid's rank_cy with mINP; torchreid's own
# Cython is not on PyPI), re-ranking vs. torchreid's re_ranking, the loader vs. torchvision's.
#   bench/run_python_bench.sh [market|msmt] [--what eval,rerank,loader] [--rounds N]
# The baselines come from PyPI source packages (fastreid 1.4.0, torchreid 0.2.5: the files are
# read, nothing of them is installed), compiled once into ~/.cache/libreid/python-bench with
# Cython. Needs the package built into build/python (scripts/setup.sh --all) and, for the
# loader, REID_DATA_ROOT holding market1501/. The MSMT17-sized baseline needs ~12 GB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scenario=${1:-market}
shift || true
python=${REID_PYTHON:-$(sed -n 's/^REID_PYTHON:[A-Z]*=//p' build/CMakeCache.txt)}
cache=${REID_BENCH_CACHE:-$HOME/.cache/libreid/python-bench}
mkdir -p "$cache"
ext=$("$python" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
if [ ! -f "$cache/cython/rank_cy$ext" ]; then
  "$python" -m pip install -q --target "$cache/tools" "cython>=3,<4"
  "$python" -m pip download -q --no-deps --no-binary :all: fastreid==1.4.0 torchreid==0.2.5 -d "$cache/src"
  tar xzf "$cache/src/fastreid-1.4.0.tar.gz" -C "$cache/src"
  tar xzf "$cache/src/torchreid-0.2.5.tar.gz" -C "$cache/src"
  mkdir -p "$cache/cython"
  cp "$cache/src/fastreid-1.4.0/fastreid/evaluation/rank_cylib/rank_cy.pyx" "$cache/cython/"
  PYTHONPATH="$cache/tools" "$python" -m cython -3 "$cache/cython/rank_cy.pyx" -o "$cache/cython/rank_cy.c"
  include=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  numpy_include=$("$python" -c "import numpy; print(numpy.get_include())")
  cc -O3 -shared -fPIC -w -I"$include" -I"$numpy_include" "$cache/cython/rank_cy.c" -o "$cache/cython/rank_cy$ext"
fi
dir=${TMPDIR:-/tmp}/libreid-eval-$scenario
[ -f "$dir/qf.npy" ] || { mkdir -p "$dir" && build/bin/bench_eval --scenario "$scenario" --write "$dir"; }
PYTHONPATH="$PWD/build/python" OMP_WAIT_POLICY=PASSIVE "$python" bench/python_bench.py --features "$dir" \
  --cython "$cache/cython" --torchreid-rerank "$cache/src/torchreid-0.2.5/torchreid/reid/utils/rerank.py" "$@"
