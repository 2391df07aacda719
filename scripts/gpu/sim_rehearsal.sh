#!/usr/bin/env bash
# Rehearses HERE the GPU stages of scripts/gpu/build_and_test.sh on cudasim
# (tests/cudasim: ragd's CUDA sources run on the CPU): the same steps,
# greps and servers as on the device, all with --device cuda, so the way
# the stages read real CUDA output (the CUDA passes' lines, the benchmarks'
# JSON, the servers' answers on cuda) is checked before a GPU session
# spends its minutes on it. dry_run.sh checks the calls' transport and the
# prebuilt binaries, where the CUDA steps can only SKIP; this checks those
# steps. Speed means nothing here.
#
#   [SIM_STAGE=encoder|decoder] scripts/gpu/sim_rehearsal.sh [BUILD_DIR] [SCRATCH_DIR]
#                         (defaults: both stages, build, /tmp/ragd-gpu-sim-rehearsal)
#
# BUILD_DIR holds the cudasim builds (CMake RAGD_CUDASIM=ON, the default
# where nvcc is found): ragd_cudasim, test_*_sim, bench_*_sim. The
# embedding model is the half-size copy the GPU call carries
# (gpu-deps/embed/model.tar.xz, scripts/gpu/fetch_deps.sh); the generator
# comes from its parts in gpu-deps/model-split when prepare.sh made them
# (so the join step runs too), else from the installed GGUF. Differences
# from the device, all for time: the tests visit every k-th golden record
# (RAGD_CUDASIM=1, as in ctest), bench_decode_device gets the first 32 of
# its 512 prompt ids, the benchmarks run 1 s, 3 steps and 8 or 2 pairs, the
# serving step 2 chats of 2 tokens (15 min a request allowed: emulated q8
# prefill takes about a second a token), the embedding
# benchmark (PyTorch on CUDA) and the llama.cpp peer are left out, and
# every step's limit is multiplied by LIMIT_SCALE (default 32). About 10
# minutes on two cores until session 12; since the q8 decoder became the
# default, its emulated integer products make each decode benchmark run
# ~2.5 min (the decoder call's nine take ~25 min, past the old scale of 8:
# a TIMEOUT at 1200 s there on ab7385f). The whole rehearsal took 56 min on
# cb445ce (session 13). Session 14 added two runs to the decode
# benchmark's 512-token step (11 in all) and two to the 2048-token one:
# SIM_STAGE=decoder alone took 74 min on 62ecba6 beside a CI run, and the
# 512-token step hit the scale-16 limit (2400 s); hence 32, and 3 hours
# for the whole script.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd) || exit 1
scratch=${2:-/tmp/ragd-gpu-sim-rehearsal}
for b in ragd_cudasim test_encoder_cuda_sim test_decoder_cuda_sim test_decoder_cuda_q8_sim test_cross_encoder_sim test_lmrerank_sim \
    bench_embed_device_sim bench_decode_device_sim bench_rerank_sim; do
    [ -x "$build/$b" ] || { echo "no $build/$b: build with RAGD_CUDASIM=ON (the default where nvcc is found)" >&2; exit 1; }
done
embed=$root/gpu-deps/embed/model.tar.xz
[ -f "$embed" ] || { echo "no $embed: run scripts/gpu/prepare.sh (or fetch_deps.sh) first" >&2; exit 1; }
models=${RAGD_MODELS:-$root/models}
gguf=$models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf

rm -rf "$scratch"
mkdir -p "$scratch/tree" "$scratch/out" "$scratch/bin"
bash "$root/scripts/gpu/copy_tree.sh" "$scratch/tree" || exit 1
deps=$scratch/tree/gpu-deps
mkdir -p "$deps/models"
bash "$root/scripts/gpu/untar_xz.sh" "$embed" "$deps/models" || exit 1
if [ -f "$root/gpu-deps/model-split/MANIFEST" ]; then # the parts, taken in call by call as on the device
    cp -r "$root/gpu-deps/model-split" "$scratch/split"
    for d in "$scratch/split"/call-*; do
        bash "$root/scripts/gpu/collect_parts.sh" "$d" "$deps/model-parts" > /dev/null || exit 1
    done
else
    [ -f "$gguf" ] || { echo "no generator model at $gguf (make models)" >&2; exit 1; }
    mkdir -p "$deps/models/SmolLM2-135M-Instruct" && cp "$gguf" "$deps/models/SmolLM2-135M-Instruct/"
fi

# The nine names build_and_test.sh runs, as wrappers around the cudasim builds.
wrap() { # NAME BODY
    printf '#!/usr/bin/env bash\nexport OPENBLAS_NUM_THREADS=1\n%s\n' "$2" > "$scratch/bin/$1"
    chmod +x "$scratch/bin/$1"
}
wrap ragd "exec '$build/ragd_cudasim' \"\$@\""
for t in test_encoder_cuda test_decoder_cuda test_decoder_cuda_q8 test_cross_encoder test_lmrerank; do
    wrap $t "RAGD_CUDASIM=1 exec '$build/${t}_sim' \"\$@\""
done
wrap bench_embed_device "exec '$build/bench_embed_device_sim' \"\$@\""
wrap bench_rerank "exec '$build/bench_rerank_sim' \"\$@\""
# MODEL IDS_FILE N_GEN N_SEQ DEVICE: the first 32 prompt ids, 3 steps
wrap bench_decode_device "ids=\$(mktemp) && tr -s ' \\n' '\\n\\n' < \"\$2\" | head -n 32 | tr '\\n' ' ' > \"\$ids\" &&
'$build/bench_decode_device_sim' \"\$1\" \"\$ids\" 3 \"\$4\" \"\$5\"; rc=\$?; rm -f \"\$ids\"; exit \$rc"

sim_stage=${SIM_STAGE:-all}
case $sim_stage in all | encoder | decoder) ;; *) echo "SIM_STAGE is encoder or decoder (default both)" >&2; exit 2 ;; esac
t0=$SECONDS
(cd "$scratch/tree" && env OUT="$scratch/out" BIN_DIR="$scratch/bin" LIMIT_SCALE="${LIMIT_SCALE:-32}" CALL_BUDGET_S=10800 \
    STAGE="$sim_stage" BENCH=1 BENCH_DEVICE=cuda BENCH_SECONDS=1 GEN_STEPS=3 RERANK_LM_PAIRS=2 SERVE_TOKENS=2 PEER_DIR= \
    SERVE_REQUESTS=2 SERVE_TIMEOUT_S=900 \
    RERANK_PAIRS=8 SKIP_TESTS="embedding benchmark" bash scripts/gpu/build_and_test.sh > /dev/null 2>&1)
rc=$?
cat "$scratch/out/summary.txt"
status=0
[ $rc = 0 ] || status=1
grep -qE '^(FAIL|TIMEOUT)' "$scratch/out/summary.txt" && status=1
# each CUDA step really ran its CUDA part (a SKIP would hide it)
wants=()
[ "$sim_stage" = decoder ] || wants+=('^PASS test_encoder_cuda' '^PASS test_cross_encoder \(CUDA pass' '^CUDA pass: 0 CHECK failures'
    '^PASS rerank benchmark \(cross-encoder, cuda\)' '^PASS serve --device cuda \(embeddings\)')
[ "$sim_stage" = encoder ] || wants+=('^PASS test_decoder_cuda ' '^PASS test_decoder_cuda_q8' '^PASS decode benchmark'
    '^\{"device": "cuda"' '^PASS test_lmrerank' '^test_lmrerank: f32 precision on cudasim'
    '^PASS rerank benchmark \(causal-LM, cuda\)' '^PASS serve --device cuda \(generator\)')
for want in "${wants[@]}"; do
    grep -qE "$want" "$scratch/out/summary.txt" || { echo "MISSING from the summary: $want"; status=1; }
done
echo "=== sim rehearsal: $([ $status = 0 ] && echo PASS || echo FAIL) in $((SECONDS - t0)) s (logs in $scratch/out)"
exit $status
