#!/usr/bin/env bash
# One call of the GPU plan that scripts/gpu/prepare.sh printed, run THERE
# from the repository root:
#
#   scripts/gpu/gpu_call.sh N          the call that carried gpu-deps/calls/call-N
#   scripts/gpu/gpu_call.sh fallback   the call that carried gpu-deps/pack
#
# Takes in what the call carried, moving it out of the carried folder into
# folders no call carries (kept while the machine stays warm):
#   prebuilt/   checked and unpacked by check_prebuilt.sh into
#               gpu-deps/prebuilt-run (prints PREBUILT OK or PREBUILT
#               UNUSABLE with the reason; then the next call is the fallback)
#   embed/      the half-size embedding model, into gpu-deps/models
#   gen/        generator parts, into gpu-deps/model-parts (collect_parts.sh)
#   peer/       the llama.cpp peer (build_llama_peer.sh), to gpu-deps/peer-kept
# every file first checked against the folder's SHA256SUMS; then runs the
# stage named in the folder's STAGE file (check, encoder, decoder, none) with
# scripts/gpu/build_and_test.sh, under the budget written beside it.
# `fallback` builds from source (build_and_test.sh STAGE=build). Results:
# $OUT/summary.txt (appended step by step) and the logs beside it. The
# scripts it runs are started with bash, in case the copy of the tree lost
# their executable bits.
set -uo pipefail
root=$(pwd)
[ -f "$root/scripts/gpu/gpu_call.sh" ] || { echo "run from the repository root" >&2; exit 2; }
[ $# -eq 1 ] || { echo "usage: $0 N|fallback" >&2; exit 2; }
out=${OUT:-$root/gpu-out}
export OUT=$out
mkdir -p "$out"
summary=$out/summary.txt
setup=$out/setup.log
deps=$root/gpu-deps
note() { echo "$*" | tee -a "$summary"; }
t0=$SECONDS
{
    echo "== gpu_call.sh $1 ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo "host: $(uname -m), $(ldd --version 2>&1 | head -n 1), $(. /etc/os-release 2> /dev/null && echo "$PRETTY_NAME")"
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    echo "tree HEAD: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo 'no git')"
    echo "kept from earlier calls: prebuilt-run $([ -f "$deps/prebuilt-run/OK" ] && echo yes || echo no)," \
        "build-gpu $([ -f "$root/build-gpu/.ok" ] && echo yes || echo no)," \
        "model-parts $(ls "$deps/model-parts" 2> /dev/null | grep -c '^part-')," \
        "embedding model $([ -f "$deps/models/all-MiniLM-L6-v2/model.safetensors" ] && echo yes || echo no)," \
        "peer $([ -d "$deps/peer-kept" ] && echo yes || echo no)"
} 2>&1 | tee -a "$summary"

if [ "$1" = fallback ]; then
    [ -f "$deps/pack/prefix.tar.xz" ] || { note "FAIL gpu-deps/pack was not carried"; exit 1; }
    STAGE=build CALL_BUDGET_S=${CALL_BUDGET_S:-480} bash "$root/scripts/gpu/build_and_test.sh"
    exit $?
fi
case $1 in '' | *[!0-9]*) echo "N is a call number" >&2; exit 2 ;; esac
in=$deps/calls/call-$1
[ -d "$in" ] || { note "FAIL $in was not carried (carry: [\"gpu-deps/calls/call-$1\"])"; exit 1; }
if [ -f "$in/SHA256SUMS" ]; then
    if ! (cd "$in" && sha256sum --quiet -c SHA256SUMS) >> "$setup" 2>&1; then
        note "FAIL call $1 arrived damaged (see setup.log): send the same call again"
        exit 1
    fi
fi
status=0
if [ -d "$in/prebuilt" ]; then
    bash "$root/scripts/gpu/check_prebuilt.sh" "$in/prebuilt" "$deps/prebuilt-run" >> "$setup" 2>&1
    grep -E '^(PREBUILT|cuda: |glibc: |libraries: |WARN|prebuilt commit)' "$setup" | tee -a "$summary"
    if [ ! -f "$deps/prebuilt-run/OK" ]; then
        note "NEXT: the prebuilt binaries cannot be used here; make the fallback call next" \
            "(carry [\"gpu-deps/pack\"], bash scripts/gpu/gpu_call.sh fallback), then go on with the plan"
        status=1
    fi
fi
# unpack WHAT TARBALL FOLDER (under gpu-deps, replaced): a carried archive
unpack() {
    rm -rf "${deps:?}/$3"
    mkdir -p "$(dirname "$deps/$3")"
    if bash "$root/scripts/gpu/untar_xz.sh" "$in/$2" "$(dirname "$deps/$3")" >> "$setup" 2>&1; then
        note "$1: unpacked into gpu-deps/$3"
    else
        note "FAIL cannot unpack $2"
        status=1
    fi
}
[ ! -f "$in/embed/model.tar.xz" ] || unpack "embedding model" embed/model.tar.xz models/all-MiniLM-L6-v2
if [ -f "$in/gen/MANIFEST" ]; then
    if bash "$root/scripts/gpu/collect_parts.sh" "$in/gen" "$deps/model-parts" >> "$setup" 2>&1; then
        note "generator parts: $(tail -n 1 "$setup")"
    else
        note "FAIL generator parts refused (see setup.log): send the same call again"
        status=1
    fi
fi
if [ -d "$in/peer" ]; then
    rm -rf "$deps/peer-kept"
    mv "$in/peer" "$deps/peer-kept" && note "llama.cpp peer: kept in gpu-deps/peer-kept ($(ls "$deps/peer-kept" | tr '\n' ' '))"
fi
[ ! -f "$in/scifact/scifact.tar.xz" ] || unpack SciFact scifact/scifact.tar.xz datasets/scifact
read -r stage budget < "$in/STAGE" 2> /dev/null || stage=none
note "intake done in $((SECONDS - t0)) s; stage: $stage"
case $stage in
none) ;;
check | encoder | decoder)
    if [ "$stage" = decoder ] && [ -f "$deps/model-parts/MANIFEST" ]; then
        missing=$(while read -r kind p _; do [ "$kind" = part ] && [ ! -f "$deps/model-parts/$p" ] && echo "$p"; done \
            < "$deps/model-parts/MANIFEST")
        [ -z "$missing" ] || note "WARN generator parts missing: $(echo "$missing" | tr '\n' ' ')(the machine was" \
            "probably given back between calls: start again at call 1)"
    fi
    if [ "$stage" != check ] && [ ! -f "$deps/prebuilt-run/OK" ] && [ ! -f "$root/build-gpu/.ok" ]; then
        note "WARN no usable binaries here yet: call 1 refused the prebuilt ones and no fallback call was made," \
            "or the machine was given back between calls (then start again at call 1)"
    fi
    STAGE=$stage CALL_BUDGET_S=${CALL_BUDGET_S:-${budget:-400}} bash "$root/scripts/gpu/build_and_test.sh" || status=1
    ;;
*) note "FAIL unknown stage $stage in $in/STAGE"; status=1 ;;
esac
note "== call $1: $((SECONDS - t0)) s, exit $status"
exit $status
