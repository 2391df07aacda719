#!/usr/bin/env bash
# scripts/fuzz.sh - searches for inputs that crash ragd's parsers and loaders.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# Builds the targets of tests/fuzz with clang, libFuzzer, AddressSanitizer
# and UBSan into build-fuzz/, then runs each for the given time on one core
# per target (two at a time), starting from its seeds. What a search keeps
# (new coverage) goes to build-fuzz/corpus/TARGET, not to the repository; a
# crashing input is written to build-fuzz/crashes/ and the run fails. To
# keep a crasher as a regression test once it is fixed, copy it into
# tests/fuzz/seeds/TARGET/ (ctest replays every file there on each build).
# Run from anywhere; needs `make models` first (fuzz_tokenize reads the
# default models' tokenizers).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
B=build-fuzz
faiss_src=""
[ -f build/_deps/faiss/src/c_api/Index_c.cpp ] && faiss_src="-DFAISS_SOURCE_DIR=$PWD/build/_deps/faiss/src"
CC=clang CXX=clang++ cmake -S . -B $B -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAGD_FUZZ=ON -DRAGD_SANITIZE=ON \
  -DRAGD_CUDA=OFF -DRAGD_CUDASIM=OFF $faiss_src > $B.cmake.log
cmake --build $B -j "$(nproc)" --target "${targets[@]}" > $B.build.log
mkdir -p $B/crashes
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export OPENBLAS_NUM_THREADS=1
fail=0
run_one() {
  local t=$1 seeds=tests/fuzz/seeds/${1#fuzz_}
  mkdir -p $B/corpus/$t
  # -rss_limit_mb: a model file may make ragd allocate what its sizes imply,
  # never more than the input bounds; 2 GB finds the unbounded ones.
  $B/$t $B/corpus/$t "$seeds" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -max_len=400000 \
    -artifact_prefix=$B/crashes/$t- -print_final_stats=1 > $B/$t.log 2>&1
}
pids=()
names=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || { echo "FAIL ${names[0]} (see $B/${names[0]}.log)"; fail=1; }
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "FAIL ${names[$i]} (see $B/${names[$i]}.log)"; fail=1; }
done
for t in "${targets[@]}"; do
  printf '%-22s %s\n' "$t" "$(grep -E '^stat::number_of_executed_units|^Done' $B/$t.log | tr '\n' ' ')"
done
ls $B/crashes
exit $fail
