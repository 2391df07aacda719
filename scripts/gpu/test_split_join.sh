#!/usr/bin/env bash
# Checks split_model.sh / collect_parts.sh / join_model.sh HERE: a file (the
# argument, default a 7.5 MiB random one) split into 1 MiB parts, carried
# in two batches as two GPU calls would, joins back bit for bit; a part
# damaged on the way is refused, a missing part stops the join, a store
# holding another split is refused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
src=${1:-}
if [ -z "$src" ]; then
    mkdir -p "$w/src/Model"
    head -c $((7 * 1024 * 1024 + 512 * 1024)) /dev/urandom > "$w/src/Model/model.gguf"
    src=$w/src/Model/model.gguf
fi
mib=$(($(stat -c %s "$src") > 64 * 1024 * 1024 ? 25 : 1))
"$here/split_model.sh" "$src" "$w/split" "$mib" > /dev/null
mapfile -t parts < <(cd "$w/split" && ls part-*)
n=${#parts[@]}
[ "$n" -ge 2 ] || { echo "FAIL: expected several parts, got $n"; exit 1; }
half=$((n / 2))
fail() { echo "FAIL: $*"; exit 1; }
# call 1 carries the first half, call 2 the rest (each with the manifest)
for batch in 1 2; do
    rm -rf "$w/in" && mkdir -p "$w/in" && cp "$w/split/MANIFEST" "$w/in/"
    if [ $batch = 1 ]; then sel=("${parts[@]:0:half}"); else sel=("${parts[@]:half}"); fi
    for p in "${sel[@]}"; do cp "$w/split/$p" "$w/in/"; done
    if [ $batch = 1 ]; then
        "$here/collect_parts.sh" "$w/in" "$w/store" > /dev/null
        "$here/join_model.sh" "$w/store" "$w/models" 2> /dev/null && fail "joined with parts missing"
    else
        "$here/collect_parts.sh" "$w/in" "$w/store" > /dev/null
    fi
done
"$here/join_model.sh" "$w/store" "$w/models" > /dev/null
name=$(grep '^file ' "$w/split/MANIFEST" | cut -d' ' -f2)
cmp "$src" "$w/models/$name" || fail "joined file differs"
# a damaged part is refused and not stored
rm -rf "$w/in" "$w/store2" && mkdir -p "$w/in" && cp "$w/split/MANIFEST" "$w/split/part-00" "$w/in/"
printf 'X' | dd of="$w/in/part-00" bs=1 seek=1000 conv=notrunc status=none
"$here/collect_parts.sh" "$w/in" "$w/store2" > /dev/null 2>&1 && fail "damaged part accepted"
[ ! -f "$w/store2/part-00" ] || fail "damaged part stored"
# a part damaged in the store after collection stops the join
cp "$w/store/part-01" "$w/part01.bak"
printf 'Y' | dd of="$w/store/part-01" bs=1 seek=5 conv=notrunc status=none
"$here/join_model.sh" "$w/store" "$w/models2" 2> /dev/null && fail "joined a damaged store"
[ ! -e "$w/models2/$name" ] || fail "a damaged join left a file in place"
cp "$w/part01.bak" "$w/store/part-01"
# parts of another split are not mixed in
sed -i '1s/ [0-9a-f]*$/ 0000/' "$w/in/MANIFEST"
"$here/collect_parts.sh" "$w/in" "$w/store" > /dev/null 2>&1 && fail "mixed two splits"
echo "PASS split/collect/join: $n parts of $mib MiB, $(stat -c %s "$src") bytes joined bit for bit; damage and gaps refused"
