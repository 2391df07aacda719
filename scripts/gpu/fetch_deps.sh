#!/usr/bin/env bash
# Prepares gpu-deps/pack/ (git-ignored) for a GPU machine that has nvcc,
# CUDA, CMake and a C compiler but no network, no apt and maybe no dpkg or
# pkg-config: run HERE by scripts/gpu/prepare.sh; the pack is carried only
# for the fallback build (when the prebuilt binaries are refused there).
#
#   gpu-deps/debs/           the Debian packages ragd builds and links
#                            against and the runtime libraries they need that
#                            a CUDA development image is not expected to
#                            have; apt-get download with a private apt state
#                            (no root, nothing outside gpu-deps changes, no
#                            host name written)
#   gpu-deps/pack/prefix.tar.xz
#                            those packages unpacked with dpkg -x HERE and
#                            pruned of what the build does not use (static
#                            libraries other than libfaiss.a, docs, the
#                            reference LAPACK, ICU's unused parts): the raw
#                            packages hold 58 MB of static OpenBLAS alone,
#                            and a GPU call carries 64 MiB in all
#   gpu-deps/pack/faiss_c.tar.xz
#                            the faiss C API sources and the faiss headers
#                            (FAISS_SOURCE_DIR for cmake)
#   gpu-deps/embed/model.tar.xz
#                            the default embedding model made smaller by
#                            scripts/gpu/half_model.py (see there): its own
#                            folder, carried in a call of its own with some
#                            of the generator's parts (scripts/gpu/prepare.sh
#                            lays the calls out; README.md there)
#
# Usage: scripts/gpu/fetch_deps.sh [FAISS_SOURCE_DIR] (default build/_deps/faiss/src)
#        MODEL_ONLY=1 scripts/gpu/fetch_deps.sh   (only gpu-deps/embed)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
faiss_src=${1:-$root/build/_deps/faiss/src}
dest=$root/gpu-deps
mkdir -p "$dest/debs"

# What ragd's CMakeLists asks pkg-config / find_library for (-dev), the
# libraries those link against, and pkgconf itself (the GPU image may lack
# pkg-config). Not listed: libc, libstdc++, libgcc, libgomp, zlib, liblzma
# and GnuTLS, which a CUDA development image already has.
packages=(
    pkgconf pkgconf-bin libpkgconf3
    libsqlite3-dev libsqlite3-0
    libmicrohttpd-dev libmicrohttpd12
    libcjson-dev libcjson1
    libxml2-dev libxml2 libicu72 libicu-dev
    libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5 libquadmath0
    libfaiss-dev
    libutf8proc-dev libutf8proc2
    libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
)

# The model, smaller (see half_model.py); EMBED_SHA256 records which
# half_model.py made it (prepare.sh remakes it when that changes).
make_model() {
    rm -rf "$dest/model"
    python3 "$root/scripts/gpu/half_model.py" "${RAGD_MODELS:-$root/models}/all-MiniLM-L6-v2" "$dest/model/all-MiniLM-L6-v2"
    # lp=1, pb=1: the weights are mostly 16-bit words; LZMA then models the
    # two bytes of a word apart, a few percent smaller than the default.
    mkdir -p "$dest/embed"
    rm -f "$dest/pack/model.tar.xz" "$dest/embed/model.tar.xz" "$dest/embed/EMBED_SHA256" # (links of it stay intact)
    tar -C "$dest/model" -cf - all-MiniLM-L6-v2 | xz -T2 --lzma2=preset=6,lc=0,lp=1,pb=1 > "$dest/embed/model.tar.xz"
    sha256sum "$root/scripts/gpu/half_model.py" | cut -d' ' -f1 > "$dest/embed/EMBED_SHA256"
}
if [ "${MODEL_ONLY:-0}" = 1 ]; then # only the embedding model
    make_model
    ls -l "$dest/embed"
    exit 0
fi

apt_dir=$dest/apt
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
: > "$apt_dir/empty.list"
rm -f "$apt_dir/parts/"*
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    cp "$f" "$apt_dir/parts/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    grep -E '^[[:space:]]*deb[[:space:]]' "$f" >> "$apt_dir/parts/derived.list" || true
done
opts=(-o "Dir::Etc::SourceList=$apt_dir/empty.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root
      -o APT::Architecture=amd64)
apt-get "${opts[@]}" -qq update
rm -f "$dest/debs/"*.deb
(cd "$dest/debs" && apt-get "${opts[@]}" -qq download "${packages[@]/%/:amd64}")

# Unpack and prune into a prefix, then pack it.
stage=$dest/stage
rm -rf "$stage" && mkdir -p "$stage" "$dest/pack"
for d in "$dest/debs/"*.deb; do dpkg-deb -x "$d" "$stage"; done
lib=$stage/usr/lib/x86_64-linux-gnu
find "$stage" -name '*.a' ! -name libfaiss.a -delete
rm -rf "$stage/usr/share/doc" "$stage/usr/share/man" "$stage/usr/share/info" "$stage/usr/share/lintian" \
    "$stage/usr/share/aclocal"
# libxml2 needs only ICU's common library and data (and, as Debian builds
# it with ICU, ICU's headers: libxml/encoding.h includes unicode/ucnv.h);
# faiss's LAPACK calls
# resolve in OpenBLAS, which carries LAPACK (build_and_test.sh points
# LAPACK_LIBRARY at it), so the separate reference LAPACK is left out.
rm -f "$lib"/libicui18n.so* "$lib"/libicuio.so* "$lib"/libicutest.so* "$lib"/libicutu.so* \
    "$lib"/openblas-pthread/liblapack.so* "$lib"/openblas-pthread/libblas.so*
rm -rf "$lib/icu" "$stage/usr/share/icu" "$stage/usr/bin/icu-config" "$stage/usr/bin/icuinfo"
rm -f "$dest/pack/prefix.tar.xz" "$dest/pack/faiss_c.tar.xz" # (links of them stay intact)
tar -C "$stage" -cf - . | xz -T2 -6 > "$dest/pack/prefix.tar.xz"
rm -rf "$stage"

# The faiss C API: its sources and the faiss headers they include.
[ -f "$faiss_src/c_api/Index_c.cpp" ] || { echo "no faiss source at $faiss_src (run the normal build first)" >&2; exit 1; }
tar -C "$faiss_src" -cJf "$dest/pack/faiss_c.tar.xz" --exclude='*.o' c_api $(cd "$faiss_src" && find faiss -name '*.h')

make_model

ls -l "$dest/pack" "$dest/embed"
echo "carried: $(du -cb "$dest/pack"/* | tail -n 1 | cut -f1) bytes in gpu-deps/pack;" \
     "repository files that travel: $(cd "$root" && { git ls-files -z; git ls-files -z --others --exclude-standard; } |
       xargs -0 du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s}') bytes (64 MiB = 67108864 in all)"
