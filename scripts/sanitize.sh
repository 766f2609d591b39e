#!/usr/bin/env bash
# The standing checks: builds LibReID with clang under AddressSanitizer + UndefinedBehaviorSanitizer
# (and libFuzzer's coverage) into build-sanitize/, runs the tests of the code that reads untrusted
# bytes or does its own pointer arithmetic, then runs each libFuzzer harness in fuzz/ for
# FUZZ_SECONDS (default 60) from its seed corpus. Any test failure, sanitizer report, crash, leak
# or timeout fails the script. .ci/run calls it after the normal build and tests; run
# scripts/setup.sh first (it makes the LibTorch environment this build uses).
#
# The tests run here (SANITIZE_TESTS_REGEX) and why these: they exercise every parser and reader
# of outside data (YAML configs, dataset folders and list files, CUHK03's .mat files, images,
# .npy, torch.save files and checkpoints), the threaded data loader, the augmentations and the
# evaluation and re-ranking loops that index raw buffers, and the TCP collectives' socket buffers.
# The rest of the suite (models, losses, training) runs LibTorch's own, uninstrumented kernels
# through its API, where these sanitizers have nothing of ours to see; it runs once, unsanitized.
#   scripts/sanitize.sh              everything
#   SANITIZE_TESTS=0 scripts/sanitize.sh   fuzzers only;  FUZZ_SECONDS=0: tests only
#   SANITIZE_TESTS_REGEX=. scripts/sanitize.sh   the whole suite
#   SANITIZE_TESTS=0 FUZZ_SEED=0 FUZZ_SECONDS=600 scripts/sanitize.sh   explore longer, random seed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${SANITIZE_BUILD_DIR:-build-sanitize}
seconds=${FUZZ_SECONDS:-60}
# A fixed seed makes CI's fuzzing repeatable (a finding there is reproducible by rerunning);
# FUZZ_SEED=0 lets libFuzzer pick one, for exploring by hand.
seed=${FUZZ_SEED:-1}
# The test binary of this build holds only the files of these suites (tests/CMakeLists.txt,
# reid_sanitized_test_sources) unless SANITIZE_TESTS_REGEX asks for others.
suites='ConfigLoader|ConfigValidate|Market1501|DukeMTMC|MSMT17|CUHK03|CUHK03Mat|CustomDataset|ImageList|Datasets|ImageIO|DataLoader|Transforms|Npy|ReidEval|Weights|Checkpoint|Reliability|Metrics|Rerank|Cuhk03SingleShot|TcpBackend'
tests_regex=${SANITIZE_TESTS_REGEX:-"^($suites)\\."}
subset=ON
[ -n "${SANITIZE_TESTS_REGEX:-}" ] && subset=OFF
start=$(date +%s)

# The LibTorch environment scripts/setup.sh made (its interpreter is in the main build's cache).
python=${REID_PYTHON:-$(sed -n 's/^REID_PYTHON:[A-Z]*=//p' "${BUILD_DIR:-build}/CMakeCache.txt" 2>/dev/null || true)}
if [ -z "$python" ] || [ ! -x "$python" ]; then
  echo "sanitize: no LibTorch environment found: run scripts/setup.sh first (or set REID_PYTHON)" >&2
  exit 1
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
  # -O1 and line tables: a readable report, a shorter build; LibTorch's own kernels (the heavy
  # part of every test) are not instrumented either way.
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O1 -gline-tables-only -DNDEBUG" -DREID_PYTHON:FILEPATH="$python" -DREID_REQUIRE_CUDA=ON \
    -DREID_SANITIZE=address,undefined -DREID_BUILD_FUZZERS=ON -DREID_BUILD_BENCH=OFF > "$build.configure.log" 2>&1 ||
    { cat "$build.configure.log"; exit 1; }
fi
if ! grep -qx "REID_SANITIZE_TEST_SUBSET:BOOL=$subset" "$build/CMakeCache.txt"; then
  cmake -B "$build" -DREID_SANITIZE_TEST_SUBSET=$subset > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
fi
targets=(reid_tests)
for name in config datasets npy torch_file image; do targets+=("fuzz_$name"); done
cmake --build "$build" --parallel "$(nproc)" --target "${targets[@]}"
echo "sanitize: built in $(( $(date +%s) - start )) s"

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Leaks inside LibTorch, OpenCV and the OpenMP runtime (allocations they keep for the process's
# life) are not LibReID's; everything else is reported.
export LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_odr_violation=0:allocator_may_return_null=1

if [ "${SANITIZE_TESTS:-1}" != 0 ]; then
  t0=$(date +%s)
  if [ "$subset" = ON ]; then
    # A suite named above whose file is not in the subset would silently not run.
    for suite in ${suites//|/ }; do
      if [ "$(ctest --test-dir "$build" -N -R "^$suite\\." | sed -n 's/^Total Tests: //p')" = 0 ]; then
        echo "sanitize: suite $suite has no tests in $build: add its file to reid_sanitized_test_sources" >&2
        exit 1
      fi
    done
  fi
  ctest --test-dir "$build" --output-on-failure -j"$(nproc)" -R "$tests_regex"
  echo "sanitize: $(ctest --test-dir "$build" -N -R "$tests_regex" | sed -n 's/^Total Tests: //p') tests under ASan+UBSan in $(( $(date +%s) - t0 )) s"
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
