#!/usr/bin/env bash
# The standing checks: builds LibReID with clang under AddressSanitizer + UndefinedBehaviorSanitizer
# (and libFuzzer's coverage) into build-sanitize/, runs the whole test suite there, then runs each
# libFuzzer harness in fuzz/ for FUZZ_SECONDS (default 60) from its seed corpus. Any test
# failure, sanitizer report, crash, leak or timeout fails the script. .ci/run calls it after the
# normal build and tests.
#   scripts/sanitize.sh              everything
#   SANITIZE_TESTS=0 scripts/sanitize.sh   fuzzers only;  FUZZ_SECONDS=0: tests only
#   SANITIZE_TESTS=0 FUZZ_SEED=0 FUZZ_SECONDS=600 scripts/sanitize.sh   explore longer, random seed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${SANITIZE_BUILD_DIR:-build-sanitize}
seconds=${FUZZ_SECONDS:-60}
# A fixed seed makes CI's fuzzing repeatable (a finding there is reproducible by rerunning);
# FUZZ_SEED=0 lets libFuzzer pick one, for exploring by hand.
seed=${FUZZ_SEED:-1}
start=$(date +%s)

# LibTorch runs on GCC's OpenMP runtime: clang must not bring its own (libomp) into the process.
gomp=$(g++ -print-file-name=libgomp.so)
if [ ! -f "$build/CMakeCache.txt" ]; then
  # -O1 and line tables: a readable report, a shorter build; LibTorch's own kernels (the heavy
  # part of every test) are not instrumented either way.
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O1 -gline-tables-only -DNDEBUG" \
    -DREID_SANITIZE=address,undefined -DREID_BUILD_FUZZERS=ON -DREID_BUILD_BENCH=OFF \
    -DOpenMP_CXX_FLAGS=-fopenmp=libgomp -DOpenMP_CXX_LIB_NAMES=gomp -DOpenMP_gomp_LIBRARY="$gomp" > /tmp/reid-sanitize-configure.log ||
    { cat /tmp/reid-sanitize-configure.log; exit 1; }
fi
cmake --build "$build" --parallel "$(nproc)"
echo "sanitize: built in $(( $(date +%s) - start )) s"

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Leaks inside LibTorch, OpenCV, Gloo and the OpenMP runtime (allocations they keep for the
# process's life) are not LibReID's; everything else is reported.
export LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_odr_violation=0:allocator_may_return_null=1

if [ "${SANITIZE_TESTS:-1}" != 0 ]; then
  t0=$(date +%s)
  ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
  echo "sanitize: test suite under ASan+UBSan in $(( $(date +%s) - t0 )) s"
fi

if [ "$seconds" -gt 0 ]; then
  for name in config datasets npy torch_file image; do
    corpus=$(mktemp -d)
    cp -r "fuzz/corpus/$name/." "$corpus/"
    echo "sanitize: fuzz_$name for $seconds s"
    "$build/bin/fuzz_$name" "$corpus" -seed="$seed" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/fuzz_${name}_" 2> "$build/fuzz_$name.log" || {
      tail -60 "$build/fuzz_$name.log"
      echo "sanitize: fuzz_$name found a problem (input saved as $build/fuzz_${name}_*)"
      exit 1
    }
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz_$name.log" | tr '\n' ' '
    echo
    rm -rf "$corpus"
  done
fi
echo "sanitize: all checks passed in $(( $(date +%s) - start )) s"
