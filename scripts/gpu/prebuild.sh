#!/usr/bin/env bash
# Builds HERE the binaries the GPU run needs, with the CUDA backend for
# compute capability 9.0 only (H100/H200), and packs them with the shared
# libraries they need that a CUDA image is not expected to have, so that the
# GPU machine runs them instead of building (scripts/gpu/README.md):
#
#   scripts/gpu/prebuild.sh [SRC_ROOT]     (default: this repository's tree)
#
# The source files (scripts/gpu/sources.sh) are first copied into
# build-gpu90/src, a snapshot, so that edits made during the build neither
# break it nor go unrecorded; cmake builds that snapshot in
# build-gpu90/build (RelWithDebInfo, like the fallback build on the GPU
# machine), only the targets below. Then gpu-deps/prebuilt/ (git-ignored)
# gets:
#   bundle.tar.xz   bin/ (the binaries, debug info stripped), lib/ (every
#                   library ldd resolves for them, except the C library,
#                   the CUDA runtime, cuBLAS and the driver), lib-compat/
#                   (libstdc++, libgcc_s: the GPU machine's own are newer
#                   and are used unless they are missing)
#   MANIFEST        commit, whether the tree differed from it, nvcc, the
#                   newest GLIBC symbol version needed (bin/ and lib/; and
#                   lib-compat/'s apart), the CUDA sonames needed, sha256 of
#                   bundle.tar.xz and of every file in it
#   sources.sha256  sha256sum lines of the snapshot's source files: the GPU
#                   machine's tree must have exactly these (check_prebuilt.sh)
# Environment: JOBS (default 2), NICE (default 5), CUDA_ARCH (default 90),
# FAISS_SOURCE_DIR (default build/_deps/faiss/src, else gpu-deps/faiss).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src_root=$(cd "${1:-$root}" && pwd)
work=$root/build-gpu90
dest=$root/gpu-deps/prebuilt
jobs=${JOBS:-2}
arch=${CUDA_ARCH:-90}
targets=(ragd test_encoder_cuda test_decoder_cuda test_decoder_cuda_q8 test_cross_encoder test_lmrerank
         bench_embed_device bench_decode_device bench_rerank)
command -v nvcc > /dev/null || export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc > /dev/null || { echo "prebuild: no nvcc" >&2; exit 1; }
faiss=${FAISS_SOURCE_DIR:-$root/build/_deps/faiss/src}
[ -f "$faiss/c_api/Index_c.cpp" ] || faiss=$root/gpu-deps/faiss
[ -f "$faiss/c_api/Index_c.cpp" ] || { echo "prebuild: no faiss sources (FAISS_SOURCE_DIR)" >&2; exit 1; }
t0=$SECONDS

# 1. The snapshot and its checksums.
mkdir -p "$work"
rm -rf "$work/src.new"
mkdir -p "$work/src.new"
"$root/scripts/gpu/sources.sh" "$src_root" > "$work/sources.list"
(cd "$src_root" && tar -cf - -T "$work/sources.list") | tar -xf - -C "$work/src.new"
(cd "$work/src.new" && xargs -d '\n' sha256sum < "$work/sources.list") > "$work/sources.sha256"
# Keep the old snapshot's timestamps where nothing changed (rebuilds stay
# incremental): replace only the files that differ.
if [ -d "$work/src" ]; then
    while IFS= read -r f; do
        cmp -s "$work/src.new/$f" "$work/src/$f" || { mkdir -p "$work/src/$(dirname "$f")"; cp "$work/src.new/$f" "$work/src/$f"; }
    done < "$work/sources.list"
    # files gone from the tree go from the snapshot too
    (cd "$work/src" && find . -type f | sed 's|^\./||') | LC_ALL=C sort | comm -23 - "$work/sources.list" |
        while IFS= read -r f; do rm -f "$work/src/$f"; done
    rm -rf "$work/src.new"
else
    mv "$work/src.new" "$work/src"
fi
commit=$(git -C "$src_root" rev-parse HEAD 2> /dev/null || echo unknown)
dirty=no
if [ "$commit" != unknown ] && [ -n "$(git -C "$src_root" status --porcelain -- $(cat "$work/sources.list") 2> /dev/null)" ]; then
    dirty=yes
fi
echo "prebuild: $(wc -l < "$work/sources.list") source files of $commit (changed since: $dirty) in $work/src"

# 2. Configure and build only what the GPU run uses.
nice -n "${NICE:-5}" cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAGD_WERROR=OFF -DRAGD_CUDASIM=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" -DFAISS_SOURCE_DIR="$faiss" > "$work/configure.log" 2>&1 ||
    { tail -n 30 "$work/configure.log"; exit 1; }
grep -q "CUDA backend ON" "$work/configure.log" || { echo "prebuild: cmake did not enable the CUDA backend" >&2; exit 1; }
nice -n "${NICE:-5}" cmake --build "$work/build" -j "$jobs" --target "${targets[@]}" > "$work/build.log" 2>&1 ||
    { grep -E 'error|Error' "$work/build.log" | head -n 30; exit 1; }
echo "prebuild: built ${targets[*]} in $((SECONDS - t0)) s"
# The snapshot must still be what was recorded (nothing wrote into it).
(cd "$work/src" && sha256sum --quiet -c "$work/sources.sha256") || { echo "prebuild: the snapshot changed" >&2; exit 1; }

# 3. The bundle.
stage=$work/bundle
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib" "$stage/lib-compat"
for t in "${targets[@]}"; do
    cp "$work/build/$t" "$stage/bin/$t"
    strip --strip-debug "$stage/bin/$t"
done
# What the GPU machine has or must have itself: the C library and loader,
# the CUDA runtime and cuBLAS (same major version as this nvcc; see
# MANIFEST), the driver.
system_re='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|libresolv\.so|libutil\.so|libcuda\.so|libcudart\.so|libcublas\.so|libcublasLt\.so|libnvidia)'
compat_re='^(libstdc\+\+\.so|libgcc_s\.so)'
missing=0
for b in "$stage"/bin/*; do
    ldd "$b" | awk '/=>/ {print $1, $3} !/=>/ && /^\t\// {print $1, $1}'
done | sort -u | while read -r soname path; do
    name=$(basename "$soname")
    if [ "$path" = "not" ]; then
        echo "prebuild: $name not found by ldd here" >&2
        exit 1
    fi
    [[ $name =~ $system_re ]] && continue
    if [[ $name =~ $compat_re ]]; then
        cp -L "$path" "$stage/lib-compat/$name"
    else
        cp -L "$path" "$stage/lib/$name"
    fi
done
strip --strip-debug "$stage"/lib/*.so* "$stage"/lib-compat/*.so* 2> /dev/null || true
# The newest GLIBC symbol version any of it needs, and the CUDA sonames.
glibc_of() { # the newest GLIBC_x.y symbol version the files need
    for f in "$@"; do objdump -T "$f" 2> /dev/null; done | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' |
        sort -t. -k1,1n -k2,2n -k3,3n -u | tail -n 1
}
glibc_need=$(glibc_of "$stage"/bin/* "$stage"/lib/*)
glibc_compat=$(glibc_of "$stage"/lib-compat/*)
cuda_sonames=$(for b in "$stage"/bin/*; do objdump -p "$b" | awk '/NEEDED/ {print $2}'; done |
    grep -E '^lib(cudart|cublas|cublasLt)\.so' | sort -u | tr '\n' ' ')
rm -f "$dest"/bundle.tar.xz "$dest"/MANIFEST "$dest"/sources.sha256
mkdir -p "$dest"
tar -C "$stage" -cf - bin lib lib-compat | xz -T"$jobs" -6 > "$dest/bundle.tar.xz"
cp "$work/sources.sha256" "$dest/sources.sha256"
{
    echo "commit $commit"
    echo "sources_changed_since_commit $dirty"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$ID-$VERSION_ID"), $(ldd --version | head -n 1)"
    echo "nvcc $(nvcc --version | grep -o 'release [0-9.]*' | cut -d' ' -f2), CMAKE_CUDA_ARCHITECTURES=$arch, RelWithDebInfo"
    echo "glibc_needed $glibc_need"
    echo "glibc_needed_by_lib_compat $glibc_compat"
    echo "cuda_sonames $cuda_sonames"
    echo "bundle $(stat -c %s "$dest/bundle.tar.xz") $(sha256sum "$dest/bundle.tar.xz" | cut -d' ' -f1)"
    (cd "$stage" && find bin lib lib-compat -type f | LC_ALL=C sort | xargs sha256sum | sed 's/^/file /')
} > "$dest/MANIFEST"
echo "prebuild: $(ls "$stage/bin" | wc -l) binaries ($(du -sb "$stage/bin" | cut -f1) bytes), $(ls "$stage/lib" | wc -l) +" \
    "$(ls "$stage/lib-compat" | wc -l) libraries ($(du -sb "$stage/lib" "$stage/lib-compat" | awk '{s += $1} END {print s}') bytes);" \
    "gpu-deps/prebuilt: $(du -sb "$dest" | cut -f1) bytes; needs GLIBC $glibc_need and $cuda_sonames; $((SECONDS - t0)) s in all"
