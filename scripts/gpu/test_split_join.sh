#!/usr/bin/env bash
# Checks split_model.sh / collect_parts.sh / join_model.sh HERE: a file (the
# argument, default a 7.5 MiB random one) split into parts and call
# folders, carried call by call as consecutive GPU calls would, joins back
# bit for bit; a part damaged on the way is refused, a missing part stops
# the join, a store holding another split is refused.
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
"$here/split_model.sh" "$src" "$w/split" "$mib" 2 > /dev/null
mapfile -t calls < <(cd "$w/split" && ls -d call-*)
n_parts=$(grep -c '^part ' "$w/split/MANIFEST")
fail() { echo "FAIL: $*"; exit 1; }
[ "${#calls[@]}" -ge 2 ] || fail "expected several calls, got ${#calls[@]}"
for c in "${calls[@]}"; do # each call's folder arrives as a carried path
    rm -rf "$w/in" && cp -r "$w/split/$c" "$w/in"
    "$here/collect_parts.sh" "$w/in" "$w/store" > /dev/null
    if [ "$c" != "${calls[-1]}" ]; then
        "$here/join_model.sh" "$w/store" "$w/models" 2> /dev/null && fail "joined with parts missing"
    fi
done
"$here/join_model.sh" "$w/store" "$w/models" > /dev/null
name=$(grep '^file ' "$w/split/MANIFEST" | cut -d' ' -f2)
cmp "$src" "$w/models/$name" || fail "joined file differs"
# a damaged part is refused and not stored
rm -rf "$w/in" && cp -r "$w/split/call-1" "$w/in"
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
echo "PASS split/collect/join: $n_parts parts of $mib MiB in ${#calls[@]} calls, $(stat -c %s "$src") bytes joined bit for bit; damage and gaps refused"
