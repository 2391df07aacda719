#!/usr/bin/env bash
# Prepares HERE everything a GPU session needs, in one go, and prints the
# device calls to make, in order (scripts/gpu/README.md):
#
#   scripts/gpu/prepare.sh
#
#   1. scripts/gpu/fetch_deps.sh, unless gpu-deps/pack and gpu-deps/embed
#      are already there (FRESH=1 redoes it): the Debian prefix for the
#      fallback build and the half-size embedding model (remade alone,
#      MODEL_ONLY=1, when scripts/gpu/half_model.py changed)
#   2. scripts/gpu/split_model.sh: the generator's GGUF in parts of
#      PART_MIB (default 1) MiB, so that the calls can be filled to the brim
#   3. scripts/gpu/prebuild.sh: the binaries for sm_90 and their libraries
#      (skipped when gpu-deps/prebuilt was built from exactly this tree's
#      sources, unless FRESH=1)
#   4. scripts/gpu/build_llama_peer.sh, when it is in the tree and
#      gpu-deps/peer holds no wheel yet (SKIP_PEER=1 leaves it out; it
#      compiles llama.cpp for CUDA, long on two cores); PEER_DIR=DIR
#      carries DIR as the peer instead
#   5. gpu-deps/scifact/scifact.tar.xz: the SciFact collection (SCIFACT_DIR,
#      default ../shared/datasets/scifact) for the decoder stage's retrieval
#      evaluation with the reranker on the GPU; left out when missing
#   6. gpu-deps/calls/call-N/: what each call carries (hard links), filled
#      up to 64 MiB less the working tree less MARGIN_MB (default 1.5 MB):
#      call 1 the prebuilt bundle (checked first: it decides the fallback),
#      call 2 the embedding model (encoder stage), the last call the peer
#      (decoder stage), the generator's parts filling them in order; each
#      with SHA256SUMS and STAGE ("stage budget_s")
# Then it prints the calls: carry list, command and timeout_s of each.
# The tree must not grow after this (the sizes assume it): rerun it if it
# did.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
deps=$root/gpu-deps
gen_src=${GEN_MODEL:-${RAGD_MODELS:-$root/models}/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
part_mib=${PART_MIB:-1}
t_all=$SECONDS
log() { echo "prepare: $*"; }

# 1. the pack and the embedding model
if [ "${FRESH:-0}" = 1 ] || [ ! -f "$deps/pack/prefix.tar.xz" ] || [ ! -f "$deps/pack/faiss_c.tar.xz" ] ||
    [ ! -f "$deps/embed/model.tar.xz" ]; then
    t=$SECONDS
    if "$root/scripts/gpu/fetch_deps.sh" ${FAISS_SOURCE_DIR:+"$FAISS_SOURCE_DIR"}; then
        log "fetch_deps.sh: $((SECONDS - t)) s"
    else
        log "WARN fetch_deps.sh failed after $((SECONDS - t)) s"
    fi
else
    log "gpu-deps/pack and gpu-deps/embed are there (FRESH=1 redoes them)"
fi
# the embedding model again when half_model.py changed since it was made
if [ "$(cat "$deps/embed/EMBED_SHA256" 2> /dev/null)" != "$(sha256sum "$root/scripts/gpu/half_model.py" | cut -d' ' -f1)" ]; then
    t=$SECONDS
    MODEL_ONLY=1 "$root/scripts/gpu/fetch_deps.sh"
    log "the embedding model remade with this half_model.py: $((SECONDS - t)) s"
fi
[ -f "$deps/embed/model.tar.xz" ] || { echo "prepare: no gpu-deps/embed/model.tar.xz" >&2; exit 1; }
[ -f "$deps/pack/prefix.tar.xz" ] && [ -f "$deps/pack/faiss_c.tar.xz" ] ||
    log "WARN no gpu-deps/pack: no fallback build is possible if the prebuilt binaries are refused"

# 2. the generator in parts
[ -f "$gen_src" ] || { echo "prepare: no generator model at $gen_src (make models)" >&2; exit 1; }
"$root/scripts/gpu/split_model.sh" "$gen_src" "$deps/model-split" "$part_mib" 1 > /dev/null
log "generator: $(grep -c '^part ' "$deps/model-split/MANIFEST") parts of $part_mib MiB in gpu-deps/model-split"

# 3. the prebuilt binaries
fresh_prebuilt() {
    [ -f "$deps/prebuilt/bundle.tar.xz" ] && [ -f "$deps/prebuilt/sources.sha256" ] || return 1
    diff -q <(cut -c67- "$deps/prebuilt/sources.sha256") <("$root/scripts/gpu/sources.sh" "$root") > /dev/null &&
        sha256sum --quiet -c "$deps/prebuilt/sources.sha256" > /dev/null 2>&1
}
if [ "${FRESH:-0}" != 1 ] && fresh_prebuilt; then
    log "gpu-deps/prebuilt matches this tree's sources"
else
    t=$SECONDS
    "$root/scripts/gpu/prebuild.sh"
    log "prebuild.sh: $((SECONDS - t)) s"
fi

# 4. the llama.cpp peer
if [ -x "$root/scripts/gpu/build_llama_peer.sh" ] && [ "${SKIP_PEER:-0}" != 1 ] && [ -z "${PEER_DIR:-}" ] &&
    ! ls "$deps"/peer/llama_cpp_python-*.whl > /dev/null 2>&1; then
    t=$SECONDS
    if "$root/scripts/gpu/build_llama_peer.sh" "$deps/peer"; then
        log "build_llama_peer.sh: $((SECONDS - t)) s"
    else
        log "WARN build_llama_peer.sh failed after $((SECONDS - t)) s"
    fi
fi
peer=
if [ -n "${PEER_DIR:-}" ]; then
    peer=$(cd "$PEER_DIR" && pwd)
elif ls "$deps"/peer/llama_cpp_python-*.whl > /dev/null 2>&1; then
    peer=$deps/peer
else
    log "WARN no llama.cpp peer in gpu-deps/peer: the GPU comparison with llama.cpp will not run"
fi

# 5. the SciFact collection (2.4 MB compressed)
scifact_src=${SCIFACT_DIR:-$root/../shared/datasets/scifact}
scifact=
if [ -f "$scifact_src/corpus.jsonl" ] && [ -f "$scifact_src/queries.test.jsonl" ] && [ -f "$scifact_src/qrels.test.tsv" ]; then
    mkdir -p "$deps/scifact"
    if [ ! -f "$deps/scifact/scifact.tar.xz" ] || [ "$scifact_src/corpus.jsonl" -nt "$deps/scifact/scifact.tar.xz" ]; then
        tar -C "$(dirname "$scifact_src")" -cJf "$deps/scifact/scifact.tar.xz" \
            "$(basename "$scifact_src")"/{corpus.jsonl,queries.test.jsonl,qrels.test.tsv}
    fi
    scifact=$deps/scifact/scifact.tar.xz
    log "SciFact: $(stat -c %s "$scifact") bytes in gpu-deps/scifact"
else
    log "WARN no SciFact collection at $scifact_src: the GPU run will not evaluate retrieval with the reranker"
fi

# 6. the calls
limit=67108864
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 stat -c %s 2> /dev/null |
    awk '{s += $1} END {print s}')
margin=$(awk -v m="${MARGIN_MB:-1.5}" 'BEGIN {printf "%d", m * 1000000}')
cap=$((limit - tree - margin))
size_of() { du -cbL "$@" | tail -n 1 | cut -f1; }
pre_size=$(size_of "$deps"/prebuilt/{MANIFEST,sources.sha256,bundle.tar.xz})
emb_size=$(size_of "$deps/embed/model.tar.xz")
peer_size=0
[ -z "$peer" ] || peer_size=$(size_of "$peer")
[ -z "$scifact" ] || peer_size=$((peer_size + $(size_of "$scifact")))
man_size=$(stat -c %s "$deps/model-split/MANIFEST")
mapfile -t part_dirs < <(ls -d "$deps"/model-split/call-* | sort -V)
for s in "$pre_size" "$emb_size" "$peer_size"; do
    [ "$s" -le $((cap - man_size)) ] || { echo "prepare: an item of $s bytes does not fit one call ($cap)" >&2; exit 1; }
done
# fixed items: call 1 prebuilt, call 2 embed, the last call the peer; the
# parts fill call 1, call 2, as many middle calls as needed, then the last
used=("$pre_size" "$emb_size")
declare -A part_call
n_calls=2
p=0
n_parts=${#part_dirs[@]}
psize() { stat -c %s "${part_dirs[$1]}"/part-*; }
for c in 1 2; do
    room=$((cap - used[c - 1] - man_size))
    while [ $p -lt $n_parts ] && [ "$(psize $p)" -le "$room" ]; do
        part_call[$p]=$c
        room=$((room - $(psize $p)))
        p=$((p + 1))
    done
    used[c - 1]=$((cap - room))
done
rest=0
for ((i = p; i < n_parts; i++)); do rest=$((rest + $(psize $i))); done
last_room=$((cap - peer_size - man_size))
while [ $rest -gt $last_room ]; do # a middle call, filled
    n_calls=$((n_calls + 1))
    room=$((cap - man_size))
    while [ $p -lt $n_parts ] && [ "$(psize $p)" -le "$room" ]; do
        part_call[$p]=$n_calls
        room=$((room - $(psize $p)))
        rest=$((rest - $(psize $p)))
        p=$((p + 1))
    done
done
n_calls=$((n_calls + 1))
for ((i = p; i < n_parts; i++)); do part_call[$i]=$n_calls; done

rm -rf "$deps/calls"
for ((c = 1; c <= n_calls; c++)); do mkdir -p "$deps/calls/call-$c"; done
link() { cp -al "$1" "$2" 2> /dev/null || cp -a "$1" "$2"; }
mkdir -p "$deps/calls/call-1/prebuilt" "$deps/calls/call-2/embed"
for f in MANIFEST sources.sha256 bundle.tar.xz; do link "$deps/prebuilt/$f" "$deps/calls/call-1/prebuilt/$f"; done
link "$deps/embed/model.tar.xz" "$deps/calls/call-2/embed/model.tar.xz"
[ -z "$peer" ] || link "$peer" "$deps/calls/call-$n_calls/peer"
[ -z "$scifact" ] || { mkdir -p "$deps/calls/call-$n_calls/scifact" && link "$scifact" "$deps/calls/call-$n_calls/scifact/"; }
for ((i = 0; i < n_parts; i++)); do
    d=$deps/calls/call-${part_call[$i]}/gen
    mkdir -p "$d"
    link "$(ls "${part_dirs[$i]}"/part-*)" "$d/"
    [ -f "$d/MANIFEST" ] || cp "$deps/model-split/MANIFEST" "$d/MANIFEST"
done
echo "check 60" > "$deps/calls/call-1/STAGE"
echo "encoder ${ENCODER_BUDGET_S:-240}" > "$deps/calls/call-2/STAGE"
for ((c = 3; c < n_calls; c++)); do echo "none 0" > "$deps/calls/call-$c/STAGE"; done
echo "decoder ${DECODER_BUDGET_S:-480}" > "$deps/calls/call-$n_calls/STAGE"
for ((c = 1; c <= n_calls; c++)); do
    (cd "$deps/calls/call-$c" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort |
        xargs -d '\n' sha256sum > SHA256SUMS)
done

# the plan
echo
log "done in $((SECONDS - t_all)) s. Working tree $tree bytes; a call carries at most $limit bytes in all."
printf '%-10s %12s %s\n' call bytes "what (plus the tree)"
for ((c = 1; c <= n_calls; c++)); do
    d=$deps/calls/call-$c
    b=$(size_of "$d")
    [ $((b + tree)) -le $limit ] || { echo "prepare: call-$c is over the limit" >&2; exit 1; }
    what=$(cd "$d" && for x in prebuilt embed peer scifact; do [ -e $x ] && printf '%s (%s) ' $x "$(size_of $x)"; done
        [ -d gen ] && printf 'gen %s parts (%s) ' "$(ls gen | grep -c '^part-')" "$(size_of gen)"; true)
    printf '%-10s %12s %s; stage %s; %s bytes spare\n' "call-$c" "$b" "$what" "$(cat "$d/STAGE")" $((limit - tree - b))
done
[ ! -d "$deps/pack" ] ||
    printf '%-10s %12s %s\n' fallback "$(size_of "$deps/pack")" "gpu-deps/pack (only when call 1 says PREBUILT UNUSABLE)"
echo
echo "The device calls, one right after the other (the machine goes back after ~30 s idle):"
timeout_of() { case $(cut -d' ' -f1 "$deps/calls/call-$1/STAGE") in check) echo 120 ;; encoder) echo 300 ;; decoder) echo 540 ;; *) echo 90 ;; esac; }
for ((c = 1; c <= n_calls; c++)); do
    echo "  run  carry=[\"gpu-deps/calls/call-$c\"]  command=\"bash scripts/gpu/gpu_call.sh $c\"  timeout_s=$(timeout_of $c)"
    if [ $c = 1 ]; then
        echo "       (if its output says PREBUILT UNUSABLE: run  carry=[\"gpu-deps/pack\"]  command=\"bash scripts/gpu/gpu_call.sh fallback\"  timeout_s=540  next)"
    fi
done
echo "  then give_back. Results: summary.txt of each call (also setup.log, tests.log, bench.log, serve.log, bench_gpu.json, peer.json, peer.log)."
