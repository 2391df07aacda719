#!/usr/bin/env bash
# On the GPU machine: decides whether the binaries scripts/gpu/prebuild.sh
# made can be used instead of building, and sets them up. Run from the
# repository root:
#
#   scripts/gpu/check_prebuilt.sh IN_DIR RUN_DIR
#
# IN_DIR holds what prebuild.sh wrote (MANIFEST, sources.sha256,
# bundle.tar.xz); the bundle is unpacked into RUN_DIR (a folder no call
# carries, so it stays while the machine is warm). With IN_DIR "-" nothing
# is unpacked: the binaries already in RUN_DIR are checked again (a later
# call). Checks, each printed:
#   - the bundle's and every unpacked file's SHA-256 against the MANIFEST;
#   - the source files of this tree (scripts/gpu/sources.sh) are exactly
#     those the binaries were built from, byte for byte (the commit is
#     printed beside git's HEAD where the tree has git);
#   - this machine's C library is at least the one the binaries need;
#   - ldd finds every library: RUN_DIR/lib first, then the system's;
#     lib-compat (libstdc++, libgcc_s) only where the system lacks them;
#     the CUDA runtime and cuBLAS from the system, else from the CUDA
#     toolkit's or the Python CUDA wheels' folders;
#   - `ragd --version` runs (and names the GPU).
# On success it writes RUN_DIR/wrap/NAME for every binary: a small script
# that runs RUN_DIR/bin/NAME with the bundle's folders put before any
# LD_LIBRARY_PATH already set (the image may find the driver's libcuda
# through it), for that binary alone (Python, PyTorch and curl keep the
# system's libraries), and RUN_DIR/OK; exit 0.
# Otherwise exit 1 with the reason on the last line, and RUN_DIR/OK removed.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: $0 IN_DIR|- RUN_DIR" >&2; exit 2; }
in=$1 run=$2
root=$(pwd)
[ -f "$root/scripts/gpu/sources.sh" ] || { echo "run from the repository root" >&2; exit 2; }
bad() { echo "PREBUILT UNUSABLE: $*"; rm -f "$run/OK"; exit 1; }
rm -f "$run/OK"
if [ "$in" != - ]; then
    for f in MANIFEST sources.sha256 bundle.tar.xz; do [ -f "$in/$f" ] || bad "$in/$f is missing"; done
    read -r _ bytes sum < <(grep '^bundle ' "$in/MANIFEST")
    [ "$(stat -c %s "$in/bundle.tar.xz")" = "$bytes" ] && [ "$(sha256sum "$in/bundle.tar.xz" | cut -d' ' -f1)" = "$sum" ] ||
        bad "bundle.tar.xz differs from its MANIFEST (damaged on the way?)"
    rm -rf "$run"
    mkdir -p "$run"
    bash "$root/scripts/gpu/untar_xz.sh" "$in/bundle.tar.xz" "$run" || bad "cannot unpack bundle.tar.xz"
    cp "$in/MANIFEST" "$in/sources.sha256" "$run/"
fi
[ -f "$run/MANIFEST" ] || bad "nothing unpacked in $run"
man=$run/MANIFEST
(cd "$run" && grep '^file ' MANIFEST | cut -d' ' -f2- | sha256sum --quiet -c -) > /dev/null 2>&1 ||
    bad "unpacked files differ from the MANIFEST"
echo "prebuilt: $(sed -n 's/^built //p' "$man"); $(grep '^nvcc ' "$man")"

# The sources: the same files, the same bytes.
commit=$(sed -n 's/^commit //p' "$man")
head=$(git -C "$root" rev-parse HEAD 2> /dev/null || echo "unknown (no git here)")
echo "prebuilt commit $commit (sources changed since then: $(sed -n 's/^sources_changed_since_commit //p' "$man")); this tree's HEAD $head"
if [ "$head" != "$commit" ] && [ "${head#unknown}" = "$head" ]; then
    echo "WARN commit differs from HEAD: the source files' checksums below decide"
fi
diff_list=$(diff <(cut -c67- "$run/sources.sha256") <(bash "$root/scripts/gpu/sources.sh" "$root") | grep '^[<>]' | head -n 5)
[ -z "$diff_list" ] || bad "the tree's source files are not those the binaries were built from: $(echo "$diff_list" | tr '\n' ' ')"
changed=$(cd "$root" && sha256sum -c "$run/sources.sha256" 2> /dev/null | grep -v ': OK$' | head -n 5)
[ -z "$changed" ] || bad "source files changed since the prebuild (run scripts/gpu/prebuild.sh again): $(echo "$changed" | tr '\n' ' ')"
echo "sources: $(wc -l < "$run/sources.sha256") files, identical to the prebuild's"

# The C library.
need=$(sed -n 's/^glibc_needed //p' "$man")
have=$(ldd --version 2>&1 | head -n 1 | grep -o '[0-9]\+\.[0-9]\+$')
if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -t. -k1,1n -k2,2n | tail -n 1)" != "$have" ]; then
    bad "this machine's glibc is $have, the binaries need $need"
fi
echo "glibc: here $have, needed $need"

# The libraries.
missing() { # missing LIBPATH: the libraries ldd does not find for any binary
    for b in "$run"/bin/*; do LD_LIBRARY_PATH=$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$b" 2>&1; done |
        awk '/not found/ {print $1}' | sort -u
}
path=$run/lib
miss=$(missing "$path")
if echo "$miss" | grep -qE '^lib(stdc\+\+|gcc_s)\.so'; then
    path=$path:$run/lib-compat
    echo "libstdc++/libgcc_s: not on this machine, the bundled ones are used"
    miss=$(missing "$path")
fi
if [ -n "$miss" ]; then
    # the CUDA runtime and cuBLAS: the toolkit's folders, then the wheels'
    cands=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64)
    py_dirs=$(python3 -c 'import glob, os, sys
for p in sys.path:
    for d in glob.glob(os.path.join(p, "nvidia", "*", "lib")) + glob.glob(os.path.join(p, "nvidia", "*", "*", "lib")):
        print(d)' 2> /dev/null)
    while IFS= read -r d; do [ -n "$d" ] && cands+=("$d"); done <<< "$py_dirs"
    for lib in $miss; do
        for d in "${cands[@]}"; do
            if [ -e "$d/$lib" ]; then
                case ":$path:" in *":$d:"*) ;; *) path=$path:$d ;; esac
                echo "$lib: from $d"
                break
            fi
        done
    done
    miss=$(missing "$path")
fi
[ -z "$miss" ] || bad "libraries not found: $(echo "$miss" | tr '\n' ' ')"
echo "libraries: all found (LD_LIBRARY_PATH=$path${LD_LIBRARY_PATH:+, then $LD_LIBRARY_PATH})"
for b in "$run"/bin/*; do
    LD_LIBRARY_PATH=$path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$b" | grep -E 'libcudart|libcublas|libstdc|libgomp|libopenblas' | sed "s|^|$(basename "$b"): |"
done | sort -u -t: -k2 | sed 's/ (0x[0-9a-f]*)//' | head -n 8

# The binaries run.
mkdir -p "$run/wrap"
for b in "$run"/bin/*; do
    n=$(basename "$b")
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' "$path" "$b" > "$run/wrap/$n"
    chmod +x "$run/wrap/$n"
done
v=$(timeout 60 "$run/wrap/ragd" --version 2>&1) || bad "ragd --version failed: $(echo "$v" | tail -n 3 | tr '\n' ' ')"
echo "$v"
echo "$path" > "$run/OK"
echo "PREBUILT OK"
