#!/usr/bin/env bash
# Runs ragd's GPU checks and benchmarks on the GPU machine (nvcc, CUDA,
# CMake, Python with PyTorch and sentence-transformers; no network, no apt),
# from the repository root THERE, normally through scripts/gpu/gpu_call.sh
# (which first takes in what the call carried; scripts/gpu/README.md):
#
#   STAGE=check|encoder|decoder|all|build scripts/gpu/build_and_test.sh
#                                  (results under $OUT, else ./gpu-out)
#
# Binaries: the prebuilt ones (scripts/gpu/prebuild.sh, checked and set up
# by check_prebuilt.sh in gpu-deps/prebuilt-run) when they match this tree;
# else those an earlier call built in build-gpu; else, when gpu-deps/pack is
# here (scripts/gpu/fetch_deps.sh), they are built now from source against
# the pack's Debian prefix (only the targets below, CUDA for sm_90;
# CUDA_ARCH changes it). STAGE=build only does that.
#
# Stages (only the tests with a CUDA part; CI runs the CPU suite):
#   check    which binaries, and `ragd --version` (names the GPU)
#   encoder  needs gpu-deps/models/all-MiniLM-L6-v2 (the half-size copy):
#            test_encoder_cuda; test_cross_encoder (its CUDA pass decides:
#            the CPU pass fails its 1e-3 bound on the half-size weights by
#            design, see README); the embedding benchmark (bench_gpu.py,
#            128 tokens); bench_rerank on CUDA (the test cross-encoder);
#            `ragd serve --device cuda` with /v1/embeddings
#   decoder  needs the generator's parts in gpu-deps/model-parts: joins and
#            checks the GGUF (manifest and the golden fixture's SHA-256);
#            test_decoder_cuda_q8 (the 8-bit activation kernels, no model);
#            test_decoder_cuda; bench_decode_device (512-token prompt,
#            TTFT, 1 and 16 sequences); test_lmrerank (its CPU and CUDA passes);
#            bench_rerank on the causal-LM reranker (f32, 64 and 256 pairs);
#            llama.cpp on the GPU through scripts/gpu/run_peer.sh when the
#            peer folder is here (gpu-deps/peer-kept or gpu-deps/peer;
#            a WARN otherwise); `ragd serve --device cuda` chat completion
#   all      encoder then decoder
# Every step runs under `timeout`, at most what is left of CALL_BUDGET_S
# (default 400) seconds for the whole script, in order of importance, and
# appends its PASS/FAIL/SKIP/TIMEOUT line to $OUT/summary.txt at once, so a
# call cut short still returns what was done. Logs (at most 8 files come
# back from a call): summary.txt, setup.log, tests.log, bench.log,
# serve.log, bench_gpu.json, peer.json, peer.log.
# BENCH=0 skips benchmarks, servers and the peer (a dry run without a GPU,
# where the CUDA tests exit 77, counted as SKIP); BENCH_DEVICE=cpu runs the
# servers and the C benchmarks on the CPU instead (the dry run's wiring
# check; bench_gpu.py and the peer are then skipped), with GEN_STEPS and
# BENCH_SECONDS to keep it short. SKIP_TESTS (a regex of
# test names, or "embedding benchmark", "rerank benchmark", "kernel times",
# SciFact) leaves them out. BIN_DIR takes the
# binaries from that folder as they are and LIMIT_SCALE multiplies every
# step's time limit: scripts/gpu/sim_rehearsal.sh runs the stages HERE on
# the cudasim builds that way. Exit status 0 when no step failed.
set -uo pipefail
root=$(pwd)
[ -f "$root/scripts/gpu/build_and_test.sh" ] || { echo "run from the repository root" >&2; exit 2; }
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
stage=${STAGE:-all}
case $stage in check | encoder | decoder | all | build) ;; *) echo "STAGE is check, encoder, decoder, all or build" >&2; exit 2 ;; esac
budget=${CALL_BUDGET_S:-400}
deps=$root/gpu-deps
run=$deps/prebuilt-run
build=$root/build-gpu
models=$deps/models
parts=${MODEL_PARTS:-$deps/model-parts}
work=$deps/run
summary=$out/summary.txt
mkdir -p "$work" "$models"
export RAGD_MODELS=$models
# No network there: the hub is never asked (a local model directory needs
# nothing from it), and Python's output reaches the logs as it is printed.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
command -v nvcc > /dev/null || export PATH=/usr/local/cuda/bin:$PATH
failed=0
start=$SECONDS
note() { echo "$*" | tee -a "$summary"; }
# step NAME LOG LIMIT CMD...: CMD (a command or an exported function) under
# `timeout`, its output appended to LOG; one line in the summary.
step() {
    local name=$1 logf=$2 limit=$3
    shift 3
    local left=$((budget - (SECONDS - start) - 5))
    if [ "$left" -lt 10 ]; then
        note "SKIP $name (the budget of $budget s is spent)"
        failed=1
        return 1
    fi
    limit=$((limit * ${LIMIT_SCALE:-1}))
    [ "$limit" -le "$left" ] || limit=$left
    echo "== $name ($(date -u +%H:%M:%S), limit $limit s)" >> "$logf"
    local t0=$SECONDS rc
    timeout -k 5 "$limit" bash -c '"$@"' "$name" "$@" >> "$logf" 2>&1
    rc=$?
    case $rc in
    0) note "PASS $name ($((SECONDS - t0)) s)" ;;
    77) note "SKIP $name (no usable GPU)" ;;
    124 | 137) note "TIMEOUT $name (limit $limit s, see $(basename "$logf"))"; failed=1 ;;
    *) note "FAIL $name (exit $rc, $((SECONDS - t0)) s, see $(basename "$logf"))"; failed=1 ;;
    esac
    return $rc
}
skipped() { [ -n "${SKIP_TESTS:-}" ] && [[ $1 =~ ^(${SKIP_TESTS})$ ]] && note "SKIP $1 (SKIP_TESTS)"; }
dev=${BENCH_DEVICE:-cuda}
export root out models work dev

note "== build_and_test.sh STAGE=$stage ($(date -u +%H:%M:%S))"

# ---- the binaries ------------------------------------------------------
targets=(ragd test_encoder_cuda test_decoder_cuda test_decoder_cuda_q8 test_cross_encoder test_lmrerank
         bench_embed_device bench_decode_device bench_rerank)
source_build() { # from gpu-deps/pack: the Debian prefix and the faiss C API sources
    local pack=$deps/pack prefix=$deps/prefix
    local lib=$prefix/usr/lib/x86_64-linux-gnu
    rm -rf "$prefix" "$deps/faiss" "$build"
    mkdir -p "$prefix" "$deps/faiss"
    bash "$root/scripts/gpu/untar_xz.sh" "$pack/prefix.tar.xz" "$prefix" &&
        bash "$root/scripts/gpu/untar_xz.sh" "$pack/faiss_c.tar.xz" "$deps/faiss" || return 1
    # What Debian's alternatives would have linked: the OpenBLAS flavour.
    ln -sf openblas-pthread/libopenblas.so.0 "$lib/libopenblas.so.0"
    ln -sf openblas-pthread/libopenblas.so "$lib/libopenblas.so"
    # libmicrohttpd.pc names GnuTLS as a private requirement, which pkgconf
    # insists on finding even for dynamic linking; the system's libgnutls
    # serves libmicrohttpd.so at run time, so the line is dropped here.
    sed -i '/^Requires.private:/d' "$lib/pkgconfig/libmicrohttpd.pc"
    # pkgconf from the prefix, on its own library, reading only the prefix.
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s/usr/bin/pkgconf" "$@"\n' "$lib" "$prefix" > "$prefix/pkg-config"
    chmod +x "$prefix/pkg-config"
    export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$lib/openblas-pthread/pkgconfig:$prefix/usr/share/pkgconfig
    export PKG_CONFIG_SYSROOT_DIR=$prefix PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
    unset PKG_CONFIG_PATH
    # DT_RPATH (not RUNPATH) so that the prefix also serves the libraries'
    # own dependencies (libxml2 -> ICU, OpenBLAS -> gfortran).
    local rpath="$lib:$lib/openblas-pthread"
    # Warnings are not errors here: that machine's compilers may be newer
    # than the Debian ones CI holds the code to.
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAGD_WERROR=OFF -DRAGD_CUDASIM=OFF \
        -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" \
        -DPKG_CONFIG_EXECUTABLE="$prefix/pkg-config" -DFAISS_SOURCE_DIR="$deps/faiss" \
        -DFAISS_LIBRARY="$lib/libfaiss.a" -DLAPACK_LIBRARY="$lib/openblas-pthread/libopenblas.so" \
        -DCMAKE_PREFIX_PATH="$prefix/usr" \
        -DCMAKE_EXE_LINKER_FLAGS="-Wl,--disable-new-dtags -Wl,-rpath,$rpath -Wl,-rpath-link,$rpath" || return 1
    grep -q 'CUDA backend ON' "$build/CMakeCache.txt" "$out/setup.log" 2> /dev/null ||
        echo "WARN the CUDA backend may not be compiled in"
    cmake --build "$build" -j "$(nproc 2> /dev/null || echo 8)" --target "${targets[@]}" || return 1
    "$build/ragd" --version && touch "$build/.ok"
}
export -f source_build
export deps build
export targets_list="${targets[*]}"
bin=
if [ -n "${BIN_DIR:-}" ] && [ "$stage" != build ]; then
    bin=$BIN_DIR
    note "binaries: $BIN_DIR (BIN_DIR)"
elif [ "$stage" != build ]; then
    if [ -f "$run/MANIFEST" ] && bash "$root/scripts/gpu/check_prebuilt.sh" - "$run" >> "$out/setup.log" 2>&1; then
        bin=$run/wrap
    elif [ ! -f "$run/MANIFEST" ] && [ -f "$deps/prebuilt/bundle.tar.xz" ] &&
        bash "$root/scripts/gpu/check_prebuilt.sh" "$deps/prebuilt" "$run" >> "$out/setup.log" 2>&1; then
        bin=$run/wrap
    fi
    if [ -n "$bin" ]; then
        note "binaries: prebuilt ($(sed -n 's/^commit //p' "$run/MANIFEST" | cut -c1-12), checked against this tree)"
    else
        [ -f "$run/MANIFEST" ] && note "$(grep 'PREBUILT UNUSABLE' "$out/setup.log" | tail -n 1)"
    fi
fi
if [ -z "$bin" ] && [ "$stage" != build ] && [ -f "$build/.ok" ]; then
    bin=$build
    note "binaries: built from source by an earlier call (build-gpu)"
fi
if [ -z "$bin" ]; then
    if [ -f "$deps/pack/prefix.tar.xz" ]; then
        step "build from source (sm_${CUDA_ARCH:-90})" "$out/setup.log" "${BUILD_LIMIT_S:-420}" bash -c \
            'targets=($targets_list); source_build' || exit 1
        bin=$build
    else
        note "FAIL no usable binaries: the prebuilt ones are missing or unusable (setup.log) and gpu-deps/pack," \
            "to build from, was not carried: run the fallback call (README)"
        exit 1
    fi
fi
export bin
[ "$stage" = build ] && exit $failed
"$bin/ragd" --version 2>&1 | sed -n 's/^cuda: /cuda: /p' | tee -a "$summary"

# ---- encoder: test_encoder_cuda, test_cross_encoder, benchmarks -------------
# test_cross_encoder's CUDA pass: the CHECK failures printed between the CPU
# pass's summary line and the CUDA pass's belong to the CUDA pass (stdout
# line-buffered so the order holds); its bound is 2e-2.
cross_encoder_cuda() {
    local log=$work/cross_encoder.out rc
    local sb=()
    command -v stdbuf > /dev/null && sb=(stdbuf -oL -eL)
    "${sb[@]}" "$bin/test_cross_encoder" > "$log" 2>&1
    rc=$?
    cat "$log"
    grep -q 'CUDA pass not run' "$log" && { echo "no CUDA pass (no GPU); test exit $rc"; return 77; }
    local cuda_line n_fail
    cuda_line=$(grep -n '^test_cross_encoder: cuda' "$log" | head -n 1 | cut -d: -f1)
    [ -n "$cuda_line" ] || { echo "no CUDA pass line (test exit $rc)"; return 1; }
    n_fail=$(sed -n "$(grep -n '^test_cross_encoder: cpu' "$log" | head -n 1 | cut -d: -f1),${cuda_line}p" "$log" |
        grep -c 'CHECK failed')
    echo "CUDA pass: $n_fail CHECK failures (the whole test exited $rc: the CPU pass's bound is 1e-3)"
    [ "$n_fail" = 0 ]
}
rerank_pairs() { # bench_rerank.py's query and 256 passages of ~200 tokens; the test cross-encoder
    local d=$work/rerank && rm -rf "$d" && mkdir -p "$d"
    python3 - "$d" <<'EOF'
import os, sys
sys.path[:0] = ["bench", "scripts"]
import bench_rerank as b, rerank_test_model as r
open(sys.argv[1] + "/pairs.tsv", "w").write("".join(f"{b.QUERY}\t{p}\n" for p in b.passages(256)))
if os.path.isdir(r.default_minilm()):
    r.assemble(sys.argv[1])
EOF
}
rerank_bench_cuda() { # the test cross-encoder on the half-size MiniLM
    local d=$work/rerank
    rerank_pairs || return 1
    local n r
    for n in ${RERANK_PAIRS:-64 256}; do
        r=$("$bin/bench_rerank" "$d/ragd-test-cross-encoder" "$d/pairs.tsv" $n 32 "${BENCH_SECONDS:-3}" "$dev") || return 1
        echo "pairs $n batch 32: $r"
    done
}
http() { # http URL [JSON_BODY]: curl -sf, or Python's urllib where curl is missing
    if command -v curl > /dev/null && [ -z "${NO_CURL:-}" ]; then
        if [ $# -gt 1 ]; then curl -sf "$1" -H 'Content-Type: application/json' -d "$2"; else curl -sf "$1"; fi
    else
        python3 -c 'import sys, urllib.request
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
req = urllib.request.Request(sys.argv[1], data=data, headers={"Content-Type": "application/json"})
try:
    sys.stdout.write(urllib.request.urlopen(req, timeout=60).read().decode())
except Exception as e:
    sys.exit(22)' "$@"
    fi
}
# start_server PORT ARGS...: `ragd serve` on PORT with ARGS in the
# background, its pid in $server_pid, waiting up to 60 s until it is ready.
start_server() {
    local port=$1
    shift
    "$bin/ragd" serve --device "$dev" --port "$port" "$@" &
    server_pid=$!
    for _ in $(seq 1 60); do
        http "http://127.0.0.1:$port/v1/health/ready" > /dev/null && break
        sleep 1
    done
}
serve_embed() {
    local data port=8765 pid ok=1
    data=$(mktemp -d)
    start_server $port --data "$data" --embed-model "$RAGD_MODELS/all-MiniLM-L6-v2"
    pid=$server_pid
    http "http://127.0.0.1:$port/v1/version" && echo &&
        http "http://127.0.0.1:$port/v1/embeddings" \
            '{"input": ["GPU embeddings from ragd"], "model": "all-MiniLM-L6-v2"}' | head -c 300 && echo &&
        http "http://127.0.0.1:$port/v1/version" | grep -q "\"device\": *\"$dev\"" && ok=0
    kill "$pid"
    wait "$pid"
    rm -rf "$data"
    return $ok
}
export -f cross_encoder_cuda rerank_pairs rerank_bench_cuda start_server serve_embed http
encoder_stage() {
    if [ ! -f "$models/all-MiniLM-L6-v2/model.safetensors" ]; then
        note "FAIL encoder stage: no embedding model in gpu-deps/models (the call carrying embed/ was not run here)"
        failed=1
        return
    fi
    skipped test_encoder_cuda || {
        step test_encoder_cuda "$out/tests.log" 150 "$bin/test_encoder_cuda"
        grep '^test_encoder_cuda' "$out/tests.log" | tail -n 20 >> "$summary"
    }
    skipped test_cross_encoder || {
        step "test_cross_encoder (CUDA pass, 2e-2)" "$out/tests.log" 180 cross_encoder_cuda
        grep -E '^test_cross_encoder: (cpu|cuda)' "$work/cross_encoder.out" >> "$summary" 2> /dev/null
        grep '^CUDA pass:' "$out/tests.log" | tail -n 1 >> "$summary"
    }
    [ "${BENCH:-1}" != 0 ] || return 0
    if [ "$dev" != cuda ]; then
        note "SKIP embedding benchmark (BENCH_DEVICE=$dev: bench_gpu.py is for CUDA)"
    elif ! skipped "embedding benchmark"; then
        step "embedding benchmark (128 tokens)" "$out/bench.log" 180 python3 "$root/scripts/gpu/bench_gpu.py" \
            "$bin/bench_embed_device" "$models/all-MiniLM-L6-v2" "$out" --seconds "${BENCH_SECONDS:-3}"
    fi
    sed -n '/^GPU: /,$p' "$out/bench.log" 2> /dev/null | grep -v '^==' | tail -n 5 >> "$summary"
    step "rerank benchmark (cross-encoder, $dev)" "$out/bench.log" 120 rerank_bench_cuda
    grep '^pairs ' "$out/bench.log" | tail -n 2 >> "$summary"
    step "serve --device $dev (embeddings)" "$out/serve.log" 90 serve_embed
}

# ---- decoder: the generator ------------------------------------------------
gen_model=$models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
export gen_model parts
join_gen_model() {
    bash "$root/scripts/gpu/join_model.sh" "$parts" "$models" || return 1
    local want got
    want=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["meta"]["model_sha256"])' \
        "$root/tests/fixtures/llama_golden.jsonl") && got=$(sha256sum "$gen_model" | cut -d' ' -f1) || return 1
    echo "generator model sha256 $got, golden fixtures' $want"
    [ "$got" = "$want" ]
}
decode_bench() {
    "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" "${GEN_STEPS:-128}" 16 "$dev" > "$work/ragd_decode.out" || return $?
    cat "$work/ragd_decode.out"
    grep '^{' "$work/ragd_decode.out" | tail -n 1 > "$work/ragd_decode.json"
    # the same without CUDA graphs (model/decoder_cuda.cu): what they save
    echo "without CUDA graphs:"
    RAGD_CUDA_GRAPHS=0 "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" "${GEN_STEPS:-128}" 16 "$dev" |
        grep '^{' | tail -n 1
    # a decode step's products: token rows a block takes (model/
    # decoder_cuda_q8.cu step_rows; 16 = all in one block, as before
    # session 20), at 16 sequences, each setting in turn
    local r
    for r in 1 2 4 8 16; do
        echo "q8 step rows $r (RAGD_CUDA_Q8_STEP_ROWS=$r), 16 sequences:"
        RAGD_CUDA_Q8_STEP_ROWS=$r "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" 64 16 "$dev" |
            grep '^{' | tail -n 1
    done
    # and a prefill's chunks of token rows (prefill_chunk; 16 before
    # session 20)
    for r in 1 2 4 8 16; do
        echo "q8 prefill chunk $r (RAGD_CUDA_Q8_PREFILL_CHUNK=$r):"
        RAGD_CUDA_Q8_PREFILL_CHUNK=$r "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" 16 16 "$dev" |
            grep '^{' | tail -n 1
    done
    # the prompt's attention a block per token (before session 14) against
    # runs of up to 8 tokens a block (the default; the same values)
    echo "a block per token in the prompt's attention (RAGD_CUDA_ATT_RUNS=0):"
    RAGD_CUDA_ATT_RUNS=0 "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" 16 16 "$dev" |
        grep '^{' | tail -n 1
    # and the prompt's products one weight row a lane (before session 14)
    # against four (the default; the same values)
    echo "one weight row a lane in the prompt's products (RAGD_CUDA_Q8_PREFILL_ROWS=1):"
    RAGD_CUDA_Q8_PREFILL_ROWS=1 "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" 16 16 "$dev" |
        grep '^{' | tail -n 1
    # fp16 activations (the default before session 12: the float kernel up
    # to 4 rows, cuBLAS beyond) against the 8-bit activations' integer
    # kernel (model/decoder_cuda_q8.cu), which takes prefill too
    echo "fp16 activations (RAGD_CUDA_ACTIVATIONS=fp16):"
    RAGD_CUDA_ACTIVATIONS=fp16 "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" "${GEN_STEPS:-128}" 16 \
        "$dev" | grep '^{' | tail -n 1
    echo "fp16 activations, decode products of up to 16 rows on ragd's float kernel (RAGD_CUDA_MATVEC_ROWS=16):"
    RAGD_CUDA_ACTIVATIONS=fp16 RAGD_CUDA_MATVEC_ROWS=16 "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" \
        "${GEN_STEPS:-128}" 16 "$dev" | grep '^{' | tail -n 1
    # fp16 copies of every matrix instead of the GGUF blocks (the default,
    # model/decoder_cuda_matvec.cu): 2.8x the bytes a step reads here
    echo "fp16 weight copies (RAGD_CUDA_WEIGHTS=fp16):"
    RAGD_CUDA_WEIGHTS=fp16 "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" "${GEN_STEPS:-128}" 16 "$dev" |
        grep '^{' | tail -n 1
    # steps of 4 and 8 sequences: the integer kernel against fp16
    # activations on cuBLAS
    local n
    for n in 4 8; do
        echo "$n sequences, 8-bit activations (the default):"
        "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" 64 "$n" "$dev" | grep '^{' | tail -n 1
        echo "$n sequences, fp16 activations on cuBLAS (RAGD_CUDA_ACTIVATIONS=fp16 RAGD_CUDA_MATVEC_ROWS=0):"
        RAGD_CUDA_ACTIVATIONS=fp16 RAGD_CUDA_MATVEC_ROWS=0 "$bin/bench_decode_device" "$gen_model" \
            "$work/ids512.txt" 64 "$n" "$dev" | grep '^{' | tail -n 1
    done
}
# Where the GPU time goes, kernel by kernel (Nsight Compute, where the
# image has it; CUDA graphs off so that each launch is profiled as itself):
# one prefill of the 512 tokens, then 2 decode steps of 1 and of 16
# sequences (bench_decode_device's BENCH_PROFILE ranges), for the q8
# decoder (the default) and fp16 activations. Clocks as the card runs them
# (--clock-control none: ncu would otherwise pin them to base).
decode_kernels() {
    local ncu act part
    ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1) || true
    [ -n "$ncu" ] || { echo "no ncu on this machine: kernel times not taken"; return 0; }
    for act in q8 fp16; do
        for part in prefill step1 stepn; do
            echo "== kernels: $part ($([ $part = stepn ] && echo '16 sequences, ' || true)$act activations)"
            RAGD_CUDA_ACTIVATIONS=$act RAGD_CUDA_GRAPHS=0 BENCH_PROFILE=$part "$ncu" --profile-from-start off --clock-control none \
                --csv --page raw --print-units base --metrics gpu__time_duration.sum \
                "$bin/bench_decode_device" "$gen_model" "$work/ids512.txt" 2 16 "$dev" \
                > "$work/ncu_${part}_$act.csv" 2> "$work/ncu_${part}_$act.err" || { tail -n 5 "$work/ncu_${part}_$act.err"; return 1; }
            python3 "$root/scripts/gpu/ncu_kernels.py" "$work/ncu_${part}_$act.csv" 10 || return 1
        done
    done
}
# A RAG prompt's length: 2048 tokens (the golden ids over and over), ragd
# (both product paths) and llama.cpp, 64 steps of 1 and 16 sequences.
decode_long() {
    python3 -c 'import sys; ids = open(sys.argv[1]).read().split(); print(" ".join((ids * 8)[:2048]))' \
        "$work/ids512.txt" > "$work/ids2048.txt" || return 1
    echo "2048-token prompt:"
    "$bin/bench_decode_device" "$gen_model" "$work/ids2048.txt" 64 16 "$dev" | grep '^{' | tail -n 1
    # the q8 attention's prefill runs (a block takes up to 8 tokens and
    # reads each K/V row once for them) against a block per token
    echo "2048-token prompt, prefill chunks of 16 as before session 20 (RAGD_CUDA_Q8_PREFILL_CHUNK=16):"
    RAGD_CUDA_Q8_PREFILL_CHUNK=16 "$bin/bench_decode_device" "$gen_model" "$work/ids2048.txt" 16 16 "$dev" |
        grep '^{' | tail -n 1
    echo "2048-token prompt, a block per token in the attention (RAGD_CUDA_ATT_RUNS=0):"
    RAGD_CUDA_ATT_RUNS=0 "$bin/bench_decode_device" "$gen_model" "$work/ids2048.txt" 16 16 "$dev" |
        grep '^{' | tail -n 1
    echo "2048-token prompt, both as before session 14 (RAGD_CUDA_ATT_RUNS=0 RAGD_CUDA_Q8_PREFILL_ROWS=1):"
    RAGD_CUDA_ATT_RUNS=0 RAGD_CUDA_Q8_PREFILL_ROWS=1 "$bin/bench_decode_device" "$gen_model" "$work/ids2048.txt" 16 16 \
        "$dev" | grep '^{' | tail -n 1
    echo "2048-token prompt, fp16 activations (RAGD_CUDA_ACTIVATIONS=fp16: cuBLAS prefill):"
    RAGD_CUDA_ACTIVATIONS=fp16 "$bin/bench_decode_device" "$gen_model" "$work/ids2048.txt" 64 16 "$dev" |
        grep '^{' | tail -n 1
    [ -n "${PEER:-}" ] && [ "$dev" = cuda ] || return 0
    echo "2048-token prompt, llama.cpp:"
    GEN_STEPS=64 PEER_ARGS="--prompt 2048 --flash-attn on" \
        bash "$root/scripts/gpu/run_peer.sh" "$PEER" "$gen_model" "$work/ids2048.txt" "$work/peer2048.json" &&
        cat "$work/peer2048.json"
}
peer_run() {
    local args=("$PEER" "$gen_model" "$work/ids512.txt" "$out/peer.json")
    [ -s "$work/ragd_decode.json" ] && args+=("$work/ragd_decode.json")
    bash "$root/scripts/gpu/run_peer.sh" "${args[@]}"
}
lm_rerank_bench() { # the causal-LM reranker (SmolLM2 yes/no) on the generator's GGUF, f32 precision
    [ -f "$work/rerank/pairs.tsv" ] || rerank_pairs || return 1
    local n r
    for n in ${RERANK_LM_PAIRS:-64 256}; do
        r=$("$bin/bench_rerank" "$gen_model" "$work/rerank/pairs.tsv" "$n" 1 "${BENCH_SECONDS:-3}" "$dev") || return 1
        echo "lm pairs $n: $r"
    done
}
serve_gen() {
    local data port=8766 pid ok=1
    data=$(mktemp -d)
    start_server $port --data "$data" --embed-model none --rerank-model none --gen-model "$gen_model"
    pid=$server_pid
    http "http://127.0.0.1:$port/v1/version" && echo &&
        http "http://127.0.0.1:$port/v1/chat/completions" \
            '{"messages": [{"role": "user", "content": "What is the capital of France?"}],
              "max_tokens": 24, "temperature": 0}' && echo &&
        http "http://127.0.0.1:$port/v1/version" | python3 -c \
            'import json,sys; sys.exit(json.load(sys.stdin)["generation"]["device"] != sys.argv[1])' "$dev" && ok=0
    kill "$pid"
    wait "$pid"
    rm -rf "$data"
    return $ok
}
export -f join_gen_model decode_bench decode_kernels decode_long lm_rerank_bench peer_run serve_gen
decoder_stage() {
    if [ -f "$gen_model" ] && [ -f "$parts/MANIFEST" ] && [ "$(sha256sum "$gen_model" | cut -d' ' -f1)" = \
        "$(sed -n 's/^file [^ ]* [0-9]* //p' "$parts/MANIFEST")" ]; then
        note "generator model: joined by an earlier run"
    elif [ -f "$parts/MANIFEST" ]; then
        step "join the generator model" "$out/setup.log" 60 join_gen_model
    else
        note "WARN no generator model parts in $parts: test_decoder_cuda checks only the kernels"
    fi
    # The benchmark's 512 prompt tokens (llama.cpp's peer reads the same
    # file): the golden prompts' ids one after another.
    python3 -c 'import json,sys
ids = [i for l in open(sys.argv[1]) for i in json.loads(l).get("ids", [])]
print(" ".join(map(str, ids[:512])))' "$root/tests/fixtures/llama_golden.jsonl" > "$work/ids512.txt"
    skipped test_decoder_cuda_q8 || {
        step test_decoder_cuda_q8 "$out/tests.log" 60 "$bin/test_decoder_cuda_q8"
        # and with the decode steps' other chunkings (the same values)
        local r
        for r in "16 16" "4 1"; do
            set -- $r
            step "test_decoder_cuda_q8 (RAGD_CUDA_Q8_STEP_ROWS=$1 RAGD_CUDA_Q8_PREFILL_CHUNK=$2)" "$out/tests.log" 60 \
                env RAGD_CUDA_Q8_STEP_ROWS=$1 RAGD_CUDA_Q8_PREFILL_CHUNK=$2 "$bin/test_decoder_cuda_q8"
        done
        sed -n '/^== test_decoder_cuda_q8 (/,$p' "$out/tests.log" | grep -E '^test_decoder_cuda_q8|CHECK failed' |
            cut -c1-400 | tail -n 12 >> "$summary"
    }
    skipped test_decoder_cuda || {
        step test_decoder_cuda "$out/tests.log" 180 "$bin/test_decoder_cuda"
        # its own lines only (tests.log holds the encoder stage's too when STAGE=all)
        sed -n '/^== test_decoder_cuda (/,$p' "$out/tests.log" | grep -E '^test_decoder_cuda|near-tie|MISMATCH|CHECK failed' |
            tail -n 30 >> "$summary"
    }
    if [ "${BENCH:-1}" != 0 ] && [ -f "$gen_model" ]; then
        step "decode benchmark (bench_decode_device)" "$out/bench.log" 150 decode_bench
        [ -s "$work/ragd_decode.json" ] && cat "$work/ragd_decode.json" >> "$summary"
        sed -n '/^without CUDA graphs:/,$p' "$out/bench.log" | grep -E '^(without|decode|fp16|q8 |[48] seq|\{)' |
            cut -c1-700 >> "$summary"
    fi
    skipped test_lmrerank || {
        step "test_lmrerank (CPU and CUDA passes)" "$out/tests.log" 180 "$bin/test_lmrerank"
        grep -E '^test_lmrerank' "$out/tests.log" | tail -n 8 >> "$summary"
    }
    [ "${BENCH:-1}" != 0 ] && [ -f "$gen_model" ] || return 0
    skipped "rerank benchmark" || {
        step "rerank benchmark (causal-LM, $dev)" "$out/bench.log" 120 lm_rerank_bench
        grep '^lm pairs ' "$out/bench.log" | tail -n 2 >> "$summary"
    }
    PEER=${PEER_DIR:-}
    [ -n "$PEER" ] || for d in "$deps/peer-kept" "$deps/peer"; do [ -d "$d" ] && { PEER=$d; break; }; done
    export PEER
    if [ "$dev" != cuda ]; then
        note "SKIP llama.cpp peer (BENCH_DEVICE=$dev)"
    elif [ -z "$PEER" ]; then
        note "WARN no llama.cpp peer (gpu-deps/peer, scripts/gpu/build_llama_peer.sh): the GPU comparison is not run"
    elif [ ! -f "$root/scripts/gpu/run_peer.sh" ]; then
        note "WARN scripts/gpu/run_peer.sh is not in this tree: the llama.cpp peer is not run"
    else
        step "llama.cpp peer on the GPU (run_peer.sh)" "$out/peer.log" 240 peer_run
        [ -s "$out/peer.json" ] && head -c 2000 "$out/peer.json" >> "$summary" && echo >> "$summary"
    fi
    step "decode benchmark, 2048-token prompt (ragd and llama.cpp)" "$out/bench.log" 150 decode_long
    sed -n '/^2048-token prompt/,$p' "$out/bench.log" | grep -E '^(2048|\{)' | cut -c1-1500 >> "$summary"
    step "serve --device $dev (generator)" "$out/serve.log" 90 serve_gen
    step "serving throughput (${SERVE_REQUESTS:-16} chats, $dev)" "$out/serve.log" 120 serve_throughput
    grep '^{"requests"' "$out/serve.log" | tail -n 2 >> "$summary"
    if [ "$dev" = cuda ] && ! skipped "kernel times"; then # each part's header, its 5 costliest kernels and the total
        step "kernel times (ncu)" "$out/bench.log" 200 decode_kernels
        sed -n '/^== kernels: /,$p' "$out/bench.log" | awk '/^== kernels: /{n=0; print; next}
            /all kernels$/{print; next} /%/{if (++n <= 5) print}' | cut -c1-150 >> "$summary"
    fi
    if skipped SciFact; then
        :
    elif [ -f "$deps/datasets/scifact/corpus.jsonl" ]; then
        step "SciFact retrieval with the reranker ($dev)" "$out/bench.log" 300 scifact_eval
        sed -n '/^== SciFact/,$p' "$out/bench.log" | grep -E '^(mode|lexical|dense|hybrid|[0-9]+ doc|ingest)' \
            >> "$summary"
    else
        note "SKIP SciFact retrieval with the reranker (no gpu-deps/datasets/scifact: prepare.sh carries it)"
    fi
}

# Issue 4's table on the whole test split: lexical, dense, hybrid and
# hybrid with the default reranker ordering 100 candidates, ragd on the
# device for ingestion (embeddings) and serving (embeddings, reranker).
scifact_eval() {
    echo "== SciFact (all test queries${EVAL_QUERIES:+, first $EVAL_QUERIES}), RAGD_DEVICE=$dev"
    RAGD_DEVICE=$dev RAGD_MODELS=$models python3 "$root/bench/eval_beir.py" --dataset "$deps/datasets/scifact" \
        --ragd "$bin/ragd" --modes lexical,dense,hybrid,hybrid+rerank --candidates 100 \
        ${EVAL_QUERIES:+--queries "$EVAL_QUERIES"}
}

# 16 concurrent chats through the server, sampled and greedy: what clients
# get, the engine's host work (token choice, detokenizing, HTTP) included
serve_throughput() {
    local data port=8767 pid rc
    data=$(mktemp -d)
    start_server $port --data "$data" --embed-model none --rerank-model none --gen-model "$gen_model"
    pid=$server_pid
    python3 "$root/scripts/gpu/serve_throughput.py" "http://127.0.0.1:$port" --requests "${SERVE_REQUESTS:-16}" \
        --max-tokens "${SERVE_TOKENS:-64}" --timeout "${SERVE_TIMEOUT_S:-120}"
    rc=$?
    kill "$pid"
    wait "$pid"
    rm -rf "$data"
    return $rc
}
export -f serve_throughput scifact_eval

case $stage in
encoder) encoder_stage ;;
decoder) decoder_stage ;;
all) encoder_stage; decoder_stage ;;
esac
note "== done in $((SECONDS - start)) s, $([ $failed = 0 ] && echo 'no step failed' || echo 'some steps failed')"
exit $failed
