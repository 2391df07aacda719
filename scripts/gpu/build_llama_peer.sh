#!/usr/bin/env bash
# build_llama_peer.sh — runs HERE (no GPU needed). Builds the llama.cpp peer for
# issue 5's GPU comparison: a wheel of llama-cpp-python (the version pinned in
# scripts/gpu/../gen_llama_golden.py, LLAMA_CPP_PYTHON) compiled from its sdist
# with the CUDA backend for compute capability 9.0 only (H100/H200), plus the
# pure-Python wheels it requires that the GPU machine's image lacks. Output:
# gpu-deps/peer/ (git-ignored), carried to the GPU machine and installed there by
# scripts/gpu/run_peer.sh.
#
# Usage:  scripts/gpu/build_llama_peer.sh [OUT_DIR]      (default gpu-deps/peer)
# Env:    LCP_SDIST=path/to/llama_cpp_python-X.tar.gz    (else an existing
#         download under /tmp/lcp<ver>/ or gpu-deps/, else `pip download`)
#         LCP_BUILD_DIR=/tmp/ragd-lcp-cuda-build          (kept: a rerun after a
#         failure recompiles only what changed)
#         JOBS=2 (CMAKE_BUILD_PARALLEL_LEVEL), NICE=10
#
# Configuration chosen (CMAKE_ARGS below) and why:
#   GGML_CUDA=ON, CMAKE_CUDA_ARCHITECTURES=90-real: SASS for sm_90 only (H100 and
#     H200 are both 9.0); "-real" leaves out the compute_90 PTX copy, which only
#     matters for future GPUs and would roughly double the CUDA library.
#   GGML_CUDA_FA stays ON (llama.cpp's default): FlashAttention is part of
#     llama.cpp's normal fast decode path (flash_attn on/auto); bench_decode_peer.py
#     measures both settings. GGML_CUDA_FA_ALL_QUANTS stays OFF (default): only
#     the f16/q4_0/q8_0 KV-cache vector kernels, and the peer uses an f16 cache.
#   GGML_CUDA_GRAPHS is llama.cpp's own default (ON when built through llama.cpp's
#     top-level CMake, as here): CUDA graphs are part of its normal decode path.
#   GGML_CUDA_FORCE_MMQ/FORCE_CUBLAS untouched: llama.cpp picks MMQ vs cuBLAS itself.
#   GGML_NATIVE=OFF: the CPU backend must not be tuned to this build machine's CPU
#     (it keeps AVX/AVX2/FMA/F16C, which every x86 server of the GPU machines has);
#     with every layer offloaded the CPU only does the token-embedding lookup.
#   GGML_BLAS/METAL/VULKAN/HIP/SYCL OFF, LLAMA_CURL OFF: not used, keep it small.
#   LLAVA_BUILD=OFF (llama-cpp-python's own switch): no multimodal library (mtmd),
#     which the peer does not use; it saves compile time and megabytes.
#   GGML_OPENMP stays ON (default; the GPU image has gcc, hence libgomp.so.1;
#     a copy goes to OUT_DIR/fallback-lib for run_peer.sh in case it lacks one).
#   wheel.py-api=py3: the bindings are ctypes only, so the wheel is tagged
#     py3-none-linux_x86_64 and installs under the GPU machine's Python 3.12 even
#     though it is built here with another Python.
#   install.strip=true: the shared libraries are installed stripped (symbols
#     only; the .nv_fatbin sections holding the sm_90 code are kept — checked
#     below with cuobjdump).
# The CUDA toolkit used is /usr/local/cuda (13.0 here; the GPU machine has 13.0
# too, and the wheel links libcudart.so.13 / libcublas.so.13 from there).
#
# Measured here on 2026-11-25 (Debian 12, 2 cores shared with other builds,
# load ~5, nice 10, 2 jobs, nvcc 13.0.88, gcc 12): the build took 1862 s (31 min,
# 168 ninja steps). The wheel as pip made it was 35.0 MB (every library twice,
# see the repack below); repacked 17.4 MB (libggml-cuda.so 23.8 MB unpacked,
# stripped, 98 sm_90 cubins and no PTX by cuobjdump --list-elf/--list-ptx).
# gpu-deps/peer in all: 17.7 MB (the wheel, diskcache-5.6.3 wheel 46 kB,
# fallback-lib/libgomp.so.1 294 kB). Needs at most GLIBC_2.34 and
# GLIBCXX_3.4.30 (gcc 12). Tag py3-none-linux_x86_64: installs with Python 3.11
# and 3.12 (checked here with pip install --target).
# A rerun with the wheel present only repacks, fetches diskcache and re-checks
# (seconds); REBUILD=1 compiles again (from a fresh pip source folder: another
# full build).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT_DIR="${1:-$ROOT/gpu-deps/peer}"
VER="$(sed -n 's/^LLAMA_CPP_PYTHON *= *"\([0-9.]*\)".*/\1/p' "$ROOT/scripts/gen_llama_golden.py" | head -1)"
[ -n "$VER" ] || { echo "build_llama_peer: cannot read LLAMA_CPP_PYTHON from scripts/gen_llama_golden.py" >&2; exit 1; }
JOBS="${JOBS:-2}"
NICE="${NICE:-10}"
BUILD_DIR="${LCP_BUILD_DIR:-/tmp/ragd-lcp-cuda-build}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
PY="${PYTHON:-python3}"

# (an OUT_DIR not made yet holds no wheel: find would fail, and pipefail with it)
WHL=""
[ -d "$OUT_DIR" ] && WHL="$(find "$OUT_DIR" -maxdepth 1 -name "llama_cpp_python-$VER-*.whl" | head -1)"
if [ -n "$WHL" ] && [ "${REBUILD:-0}" != 1 ]; then
    echo "reusing $WHL (REBUILD=1 builds it again); redoing the repack, dependencies and checks"
else
    # --- the sdist ---------------------------------------------------------
    SDIST="${LCP_SDIST:-}"
    if [ -z "$SDIST" ]; then
        for c in "/tmp/lcp${VER//./}/llama_cpp_python-$VER.tar.gz" \
                 "$ROOT/gpu-deps/sdist/llama_cpp_python-$VER.tar.gz"; do
            [ -f "$c" ] && { SDIST="$c"; break; }
        done
    fi
    if [ -z "$SDIST" ]; then
        mkdir -p "$ROOT/gpu-deps/sdist"
        "$PY" -m pip download --no-binary :all: --no-deps -d "$ROOT/gpu-deps/sdist" "llama-cpp-python==$VER"
        SDIST="$ROOT/gpu-deps/sdist/llama_cpp_python-$VER.tar.gz"
    fi
    [ -f "$SDIST" ] || { echo "build_llama_peer: no sdist at $SDIST" >&2; exit 1; }
    echo "sdist: $SDIST (sha256 $(sha256sum "$SDIST" | cut -c1-16)...)"

    # --- build ---------------------------------------------------------------
    mkdir -p "$OUT_DIR"
    rm -f "$OUT_DIR"/llama_cpp_python-*.whl
    export PATH="$CUDA_HOME/bin:$PATH"
    export CUDACXX="$CUDA_HOME/bin/nvcc"
    export CMAKE_BUILD_PARALLEL_LEVEL="$JOBS"
    export CMAKE_ARGS="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90-real \
 -DCUDAToolkit_ROOT=$CUDA_HOME -DCMAKE_CUDA_COMPILER=$CUDA_HOME/bin/nvcc \
 -DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
 -DGGML_HIP=OFF -DGGML_SYCL=OFF -DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF \
 -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
 -DLLAMA_BUILD_SERVER=OFF -DCMAKE_BUILD_TYPE=Release"
    echo "CMAKE_ARGS=$CMAKE_ARGS"
    t0=$(date +%s)
    nice -n "$NICE" "$PY" -m pip wheel --no-deps -v -w "$OUT_DIR" \
        -C wheel.py-api=py3 -C install.strip=true -C build-dir="$BUILD_DIR" \
        -C build.verbose=true -C cmake.build-type=Release \
        "$SDIST"
    t1=$(date +%s)
    echo "build time: $((t1 - t0)) s"
    WHL="$(find "$OUT_DIR" -maxdepth 1 -name "llama_cpp_python-$VER-*.whl" | head -1)"
fi
[ -n "$WHL" ] || { echo "build_llama_peer: no wheel in $OUT_DIR" >&2; exit 1; }
echo "wheel as built: $WHL ($(du -h "$WHL" | cut -f1))"

# --- repack: only the package and its metadata ------------------------------
# llama.cpp's own install() rules put a second copy of every shared library
# under the wheel's top-level lib/ (with cmake/ and pkgconfig/ files), its
# headers under include/ and convert_hf_to_gguf.py under bin/; llama_cpp loads
# its libraries from llama_cpp/lib/ only. Dropping those halves the wheel.
# RECORD is rewritten to list exactly what remains.
"$PY" - "$WHL" <<'PYEOF'
import os, sys, zipfile
whl = sys.argv[1]
tmp = whl + ".tmp"
with zipfile.ZipFile(whl) as zin:
    names = zin.namelist()
    info = next(n for n in names if n.endswith(".dist-info/RECORD"))
    dist = info.rsplit("/", 1)[0] + "/"
    keep = [n for n in names if n.startswith("llama_cpp/") or n.startswith(dist)]
    dropped = [n for n in names if n not in keep]
    if not dropped:
        print("repack: nothing to drop")
        sys.exit(0)
    kept_set = set(keep)
    record = [l for l in zin.read(info).decode().splitlines()
              if l and l.split(",", 1)[0] in kept_set]
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
        for n in keep:
            zi = zin.getinfo(n)
            data = "\n".join(record).encode() + b"\n" if n == info else zin.read(n)
            zout.writestr(zi, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
os.replace(tmp, whl)
print("repack: dropped %d files outside llama_cpp/ (%s)" % (len(dropped), ", ".join(sorted({d.split('/')[0] + '/' for d in dropped}))))
PYEOF
echo "wheel: $WHL ($(du -h "$WHL" | cut -f1))"

# --- dependencies the GPU image lacks ---------------------------------------
# Requires-Dist of the wheel: typing-extensions, numpy, diskcache, jinja2. The GPU
# image (/work/.library/device/KINDS.md, "Python packages already there") has
# numpy, jinja2 (with markupsafe) and typing-extensions; diskcache is missing.
unzip -p "$WHL" '*.dist-info/METADATA' | grep '^Requires-Dist' || true
rm -f "$OUT_DIR"/diskcache-*.whl
"$PY" -m pip download --no-deps --only-binary :all: -d "$OUT_DIR" 'diskcache>=5.6.1'

# --- checks ------------------------------------------------------------------
CHK="$(mktemp -d)"
trap 'rm -rf "$CHK"' EXIT
unzip -q "$WHL" -d "$CHK"
echo "--- wheel files"
unzip -l "$WHL" | awk 'NR>3 && $4 != "" {print $1, $4}' | grep -v '^-' | grep -E '\.so|\.py$|METADATA|WHEEL' | head -60
echo "--- tag: $(grep '^Tag' "$CHK"/*.dist-info/WHEEL)"
CUDALIB="$(find "$CHK" -name 'libggml-cuda.so*' | head -1)"
[ -n "$CUDALIB" ] || { echo "build_llama_peer: no libggml-cuda.so in the wheel" >&2; exit 1; }
echo "--- $CUDALIB"
file "$CUDALIB"
# cuobjdump: the toolkit's, else one on PATH, else the copy Triton bundles in
# one of this machine's venvs (this machine's CUDA 13.0 install has none).
CUOBJDUMP="${CUOBJDUMP:-}"
for c in "$CUDA_HOME/bin/cuobjdump" "$(command -v cuobjdump || true)" \
         /tmp/*venv*/lib/python3*/site-packages/triton/backends/nvidia/bin/cuobjdump; do
    [ -z "$CUOBJDUMP" ] && [ -n "$c" ] && [ -x "$c" ] && CUOBJDUMP="$c"
done
if [ -n "$CUOBJDUMP" ]; then
    echo "--- $CUOBJDUMP --list-elf / --list-ptx (expect sm_90 cubins only, no PTX)"
    elfs="$("$CUOBJDUMP" --list-elf "$CUDALIB")"
    echo "$elfs" | sed 's/.*\.\(sm_[0-9a-z]*\)\.cubin.*/\1/' | sort | uniq -c
    echo "PTX entries: $("$CUOBJDUMP" --list-ptx "$CUDALIB" 2>/dev/null | grep -c 'PTX file' || true)"
    if ! grep -q 'sm_90' <<< "$elfs"; then
        echo "build_llama_peer: no sm_90 code in libggml-cuda.so" >&2; exit 1
    fi
else
    echo "--- no cuobjdump found (set CUOBJDUMP=...): sm_90 code NOT checked" >&2
fi
echo "--- NEEDED of libggml-cuda.so"
readelf -d "$CUDALIB" | grep NEEDED
echo "--- highest GLIBC/GLIBCXX symbol versions required"
syms="$(find "$CHK" -name '*.so*' -exec objdump -T {} + 2>/dev/null)"
for v in GLIBC GLIBCXX; do grep -o "${v}_[0-9.]*" <<< "$syms" | sort -V -u | tail -1; done
# --- libgomp.so.1 fallback (OpenMP, needed by libggml-cpu.so) -------------------
# The GPU image has gcc and so normally libgomp.so.1; run_peer.sh uses this copy
# only when ldd finds none there.
mkdir -p "$OUT_DIR/fallback-lib"
cp -L "$(gcc -print-file-name=libgomp.so.1)" "$OUT_DIR/fallback-lib/libgomp.so.1"
echo "--- $OUT_DIR"
ls -l "$OUT_DIR"
du -sh "$OUT_DIR"
