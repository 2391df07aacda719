#!/usr/bin/env bash
# Rehearses HERE, without a GPU, the device calls that scripts/gpu/prepare.sh
# laid out in gpu-deps/calls: a scratch copy of the working tree as the
# device tool makes it (tracked and untracked-not-ignored files, no .git),
# each call's carried folder copied in, then `scripts/gpu/gpu_call.sh N`
# with BENCH=0 (no benchmarks, servers or peer; see DRY_BENCH) and OUT per
# call. The CUDA
# tests exit 77 here (SKIP); everything else must pass. Also runs the
# prebuilt binaries with only the bundle's libraries, the C library and
# the CUDA toolkit's (a private mount namespace hides /usr/lib/x86_64-linux-gnu;
# needs root and unshare, else skipped with a note).
#
#   scripts/gpu/dry_run.sh [SCRATCH_DIR]     (default /tmp/ragd-gpu-dry-run)
#
# SKIP_TESTS (a regex, e.g. test_lmrerank, slow on two cores) is passed on.
# DRY_BENCH=cpu runs the servers and the C benchmarks too, on the CPU
# (BENCH_DEVICE=cpu, GEN_STEPS 8, BENCH_SECONDS 1, RERANK_LM_PAIRS 4: their
# wiring, not speed);
# NO_CURL=1 makes the servers' checks use Python's urllib instead of curl.
# FALLBACK=1 changes a source file in the scratch copy first: call 1 must
# then refuse the prebuilt binaries, and the fallback call (gpu-deps/pack)
# builds them from source (minutes here) for the calls after it.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
scratch=${1:-/tmp/ragd-gpu-dry-run}
calls=$root/gpu-deps/calls
[ -d "$calls/call-1" ] || { echo "no gpu-deps/calls: run scripts/gpu/prepare.sh first" >&2; exit 1; }
rm -rf "$scratch"
mkdir -p "$scratch/tree" "$scratch/out"
bash "$root/scripts/gpu/copy_tree.sh" "$scratch/tree" || exit 1
# The scripts are started with bash everywhere, in case the device's copy of
# the tree loses the executable bits: here they are taken away to check it.
chmod -x "$scratch/tree"/scripts/gpu/*.sh
if [ "${FALLBACK:-0}" = 1 ]; then # a source file changed after the prebuild
    echo "/* changed after the prebuild (dry run) */" >> "$scratch/tree/common/$(ls "$scratch/tree/common" | grep '\.c$' | head -n 1)"
fi
bench_env=(env BENCH=0)
if [ "${DRY_BENCH:-}" = cpu ]; then
    bench_env=(env BENCH=1 BENCH_DEVICE=cpu GEN_STEPS="${GEN_STEPS:-8}" BENCH_SECONDS="${BENCH_SECONDS:-1}"
               RERANK_LM_PAIRS="${RERANK_LM_PAIRS:-4}")
fi
status=0
n=$(ls -d "$calls"/call-* | wc -l)
for ((c = 1; c <= n; c++)); do
    t=$(du -sb "$scratch/tree" --exclude=gpu-deps --exclude='build-*' | cut -f1)
    b=$(du -sbL "$calls/call-$c" | cut -f1)
    echo "=== call $c: carries $b bytes + tree $t = $((b + t)) (limit 67108864)"
    [ $((b + t)) -le 67108864 ] || { echo "OVER THE LIMIT"; status=1; }
    rm -rf "$scratch/tree/gpu-deps/calls/call-$c"
    mkdir -p "$scratch/tree/gpu-deps/calls"
    cp -rL "$calls/call-$c" "$scratch/tree/gpu-deps/calls/call-$c"
    mkdir -p "$scratch/out/$c"
    (cd "$scratch/tree" && OUT=$scratch/out/$c "${bench_env[@]}" bash scripts/gpu/gpu_call.sh $c > /dev/null 2>&1)
    rc=$?
    cat "$scratch/out/$c/summary.txt"
    if [ "${FALLBACK:-0}" = 1 ] && [ $c = 1 ]; then
        # the check must have refused the binaries, and the fallback call builds
        grep -q 'PREBUILT UNUSABLE' "$scratch/out/1/summary.txt" || { echo "FAIL: the changed source went unnoticed"; status=1; }
        rc=0
        echo "=== fallback call: carries $(du -sb "$root/gpu-deps/pack" | cut -f1) bytes + tree"
        cp -r "$root/gpu-deps/pack" "$scratch/tree/gpu-deps/pack"
        mkdir -p "$scratch/out/fallback"
        (cd "$scratch/tree" && OUT=$scratch/out/fallback BENCH=0 nice -n 5 bash scripts/gpu/gpu_call.sh fallback > /dev/null 2>&1) ||
            status=1
        cat "$scratch/out/fallback/summary.txt"
        continue
    fi
    files=$(find "$scratch/out/$c" -type f | wc -l)
    echo "--- call $c: exit $rc; $files files in OUT (at most 8 come back)"
    [ "$files" -le 8 ] || status=1
    grep -qE '^(FAIL|TIMEOUT)' "$scratch/out/$c/summary.txt" && status=1
    [ $rc = 0 ] || status=1
done
run=$scratch/tree/gpu-deps/prebuilt-run
if [ -f "$run/OK" ] && [ "$(id -u)" = 0 ] && command -v unshare > /dev/null; then
    echo "=== the prebuilt binaries with only the bundle's libraries (+ the C library, libstdc++ and CUDA's)"
    mini=$scratch/minilib
    mkdir -p "$mini"
    for l in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libresolv.so.2; do
        cp -L "/lib/x86_64-linux-gnu/$l" "$mini/" 2> /dev/null
    done
    cp -L /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /lib/x86_64-linux-gnu/libgcc_s.so.1 "$mini/"
    cuda=/usr/local/cuda/lib64
    # Inside the namespace only the loader, bash's builtins and the binaries
    # run (ls, grep, ldd's script would need the hidden libraries).
    unshare -m bash -c "mount --bind '$mini' /usr/lib/x86_64-linux-gnu || exit 1
        cd '$scratch/tree'
        export LD_LIBRARY_PATH='$run/lib:$cuda' RAGD_MODELS='$scratch/tree/gpu-deps/models'
        for b in '$run'/bin/*; do
            list=\$(/lib64/ld-linux-x86-64.so.2 --list \"\$b\") || { echo \"\$b: the loader failed\"; exit 1; }
            [[ \$list == *'not found'* ]] && { echo \"\$b: \$list\"; exit 1; }
            [[ \$b == */ragd ]] && echo \"\$list\"
        done
        '$run/bin/ragd' --version || exit 1
        '$run/bin/test_encoder_cuda' > /dev/null 2>&1
        rc=\$?
        echo \"test_encoder_cuda exit \$rc (77: no usable GPU)\"
        [ \$rc = 77 ]" ||
        { echo "FAIL: the binaries do not run on the bundle's libraries alone"; status=1; }
else
    echo "(not checked: the binaries on the bundle's libraries alone; needs root, unshare and a usable bundle)"
fi
echo "=== dry run: $([ $status = 0 ] && echo PASS || echo FAIL) (scratch $scratch)"
exit $status
