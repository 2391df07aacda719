#!/usr/bin/env bash
# run_peer.sh — runs THERE (the GPU machine): llama.cpp's side of issue 5's
# comparison, in the same run and on the same GPU as bench_decode_device.
#
#   scripts/gpu/run_peer.sh PEER_DIR MODEL IDS_FILE OUT_JSON [RAGD_JSON]
#
# PEER_DIR   the wheels made here by scripts/gpu/build_llama_peer.sh
#            (gpu-deps/peer: llama-cpp-python with CUDA for sm_90, diskcache);
#            the call must carry it ("carry": ["gpu-deps/peer"]).
# MODEL      the GGUF bench_decode_device reads (the joined
#            gpu-deps/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf).
# IDS_FILE   the same prompt ids file bench_decode_device read ($out/.ids512),
#            or tests/fixtures/llama_golden.jsonl (the same 512 ids are taken
#            from it the same way).
# OUT_JSON   where llama.cpp's JSON line goes (bench_decode_device's field
#            names; see scripts/gpu/bench_decode_peer.py's docstring).
# RAGD_JSON  optional: a file holding bench_decode_device's JSON line; adds
#            ragd / llama.cpp ratios to OUT_JSON and a table on stderr.
# Env: PYTHON (default python3: the GPU image's Python 3.12 with numpy, jinja2
#      and typing-extensions), PEER_SITE (default /tmp/ragd-peer-site),
#      GEN_STEPS (default 128, as build_and_test.sh), PEER_ARGS (more options
#      for bench_decode_peer.py, e.g. "--seqs 16 --flash-attn on").
#
# Exit status: 0 with OUT_JSON written; 3 when llama.cpp sees no GPU (it never
# benchmarks the CPU in place of the GPU); 4 when the wheel's libraries cannot
# be loaded (the message names the missing library); 2 on bad arguments.
#
# Example, in build_and_test.sh after the decode benchmark (before .ids512 is
# removed; the ragd line is in decoder_cuda.log):
#   scripts/gpu/run_peer.sh gpu-deps/peer "$gen_model" "$out/.ids512" \
#       "$out/decoder_peer.json" "$out/decoder_cuda.log"
#
# gpu-deps/peer is 17.7 MB (build_llama_peer.sh's header): with the 17.5 MB
# tree and the 17 MB gpu-deps/pack it fits build_and_test.sh's call (52 MB of
# the 67.1 MB limit).
#
# Checked on the build machine (no GPU), 2026-11-25, with the reference venv's
# Python 3.11 as PYTHON: the wheels install into PEER_SITE; without any
# libcuda.so.1 it stops with exit 4 naming "libcuda.so.1 => not found" (a bare
# `import llama_cpp` there raises RuntimeError "Failed to load shared library
# .../libllama.so: libcuda.so.1: cannot open shared object file"); with the
# toolkit's stub as libcuda.so.1 ggml says "failed to initialize CUDA: CUDA
# driver is a stub library", llama.cpp lists only the CPU device and this
# script exits 3 without writing OUT_JSON; with PEER_ARGS=--allow-cpu (testing
# only) the whole path runs on the CPU and writes OUT_JSON with the ratios.
# Never run on a GPU yet.
set -uo pipefail

if [ $# -lt 4 ] || [ $# -gt 5 ]; then
    echo "usage: run_peer.sh PEER_DIR MODEL IDS_FILE OUT_JSON [RAGD_JSON]" >&2
    exit 2
fi
PEER_DIR="$1" MODEL="$2" IDS="$3" OUT_JSON="$4" RAGD_JSON="${5:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"
SITE="${PEER_SITE:-/tmp/ragd-peer-site}"

for f in "$MODEL" "$IDS" ${RAGD_JSON:+"$RAGD_JSON"}; do
    [ -f "$f" ] || { echo "run_peer: no such file: $f" >&2; exit 2; }
done
shopt -s nullglob
wheels=("$PEER_DIR"/*.whl)
lcp=("$PEER_DIR"/llama_cpp_python-*.whl)
if [ ${#lcp[@]} -eq 0 ]; then
    echo "run_peer: no llama_cpp_python wheel in $PEER_DIR (make it here with scripts/gpu/build_llama_peer.sh and carry gpu-deps/peer)" >&2
    exit 2
fi

# --- install the wheels into a folder of their own (no network, no deps) ---
rm -rf "$SITE"
if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${wheels[@]}"; then
    echo "run_peer: pip install of ${wheels[*]} failed" >&2
    exit 4
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONNOUSERSITE=1
LIBDIR="$SITE/llama_cpp/lib"

# --- CUDA 13 runtime libraries (libcudart.so.13, libcublas.so.13, libcublasLt.so.13)
# The toolkit's lib64 first; else the nvidia-* pip packages of this Python
# (CUDA 13 wheels put them under nvidia/cu13/lib, older ones nvidia/*/lib).
# The driver's libcuda.so.1 comes from the system (ldconfig) or the driver
# folder; never the toolkit's stubs/ (a stub makes CUDA report no device).
add_dir() { case ":${LD_LIBRARY_PATH:-}:" in *":$1:"*) ;; *) LD_LIBRARY_PATH="$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac; }
found_rt=""
for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64; do
    if [ -e "$d/libcudart.so.13" ] && [ -e "$d/libcublas.so.13" ]; then found_rt="$d"; break; fi
done
if [ -z "$found_rt" ]; then
    while IFS= read -r d; do
        [ -n "$d" ] && add_dir "$d" && found_rt="$found_rt $d"
    done < <("$PY" - <<'EOF'
import glob, os, site, sys
roots = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
seen = []
for r in roots:
    for name in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"):
        for f in sorted(glob.glob(os.path.join(r, "nvidia", "**", name), recursive=True)):
            d = os.path.dirname(f)
            if d not in seen:
                seen.append(d)
print("\n".join(seen))
EOF
)
else
    add_dir "$found_rt"
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib/wsl/lib; do
        [ -e "$d/libcuda.so.1" ] && { add_dir "$d"; break; }
    done
fi
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
echo "run_peer: CUDA runtime from: ${found_rt:-NOT FOUND}; LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2

# --- the wheel's libraries must all resolve (a missing libcuda.so.1 or
# libcudart.so.13 would otherwise show up as a bare OSError of ctypes)
missing_libs() { for f in "$LIBDIR"/lib*.so*; do ldd "$f" 2>/dev/null | grep 'not found'; done | sort -u; }
missing="$(missing_libs)"
# OpenMP's libgomp.so.1 (the CPU backend's threads) comes with gcc; a copy from
# the build machine waits in PEER_DIR/fallback-lib for an image without it.
if [ -n "$missing" ] && [ -d "$PEER_DIR/fallback-lib" ] && echo "$missing" | grep -q "libgomp"; then
    add_dir "$(cd "$PEER_DIR/fallback-lib" && pwd)"
    export LD_LIBRARY_PATH
    echo "run_peer: using the carried $PEER_DIR/fallback-lib for: $(echo "$missing" | awk '{print $1}' | tr '\n' ' ')" >&2
    missing="$(missing_libs)"
fi
if [ -n "$missing" ]; then
    echo "run_peer: the llama.cpp libraries in $LIBDIR cannot be loaded; missing:" >&2
    echo "$missing" >&2
    exit 4
fi
if ! "$PY" -c 'import llama_cpp, sys; print("run_peer: llama_cpp", llama_cpp.__version__, "from", llama_cpp.__file__, "gpu offload:", llama_cpp.llama_supports_gpu_offload(), file=sys.stderr)'; then
    echo "run_peer: import llama_cpp failed (see above)" >&2
    exit 4
fi

# --- the benchmark: refuses (exit 3) when llama.cpp has no GPU device -------
tmp="$OUT_JSON.tmp"
# shellcheck disable=SC2086  # PEER_ARGS is a list of options
"$PY" "$HERE/bench_decode_peer.py" "$MODEL" "$IDS" --gen "${GEN_STEPS:-128}" \
    ${RAGD_JSON:+--ragd-json "$RAGD_JSON"} ${PEER_ARGS:-} > "$tmp"
rc=$?
if [ $rc -eq 3 ]; then
    rm -f "$tmp"
    echo "run_peer: llama.cpp sees no GPU: no peer figures (not benchmarking the CPU instead)" >&2
    exit 3
elif [ $rc -ne 0 ] || ! grep -q '^{' "$tmp"; then
    rm -f "$tmp"
    echo "run_peer: bench_decode_peer.py failed (exit $rc)" >&2
    exit $(( rc ? rc : 1 ))
fi
mv "$tmp" "$OUT_JSON"
cat "$OUT_JSON"
