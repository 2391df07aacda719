#!/usr/bin/env bash
# On the GPU machine: moves the model parts that this call carried (IN_DIR,
# with its MANIFEST) into STORE_DIR, a folder no call carries, so that the
# machine keeps them until the next call while it stays warm. Each part's
# size and SHA-256 are checked against the manifest as it arrives; a part
# that does not match is refused (exit 1) and not stored.
#
#   scripts/gpu/collect_parts.sh IN_DIR STORE_DIR
#
# Prints the parts stored so far and those the manifest still expects.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 IN_DIR STORE_DIR" >&2; exit 2; }
in=$1 store=$2
[ -f "$in/MANIFEST" ] || { echo "$in/MANIFEST is missing" >&2; exit 1; }
mkdir -p "$store"
if [ -f "$store/MANIFEST" ] && ! cmp -s "$in/MANIFEST" "$store/MANIFEST"; then
    echo "$store holds parts of another split (manifests differ): clear it first" >&2
    exit 1
fi
cp "$in/MANIFEST" "$store/MANIFEST"
status=0
while read -r kind pname bytes sum; do
    [ "$kind" = part ] || continue
    case $pname in part-[0-9][0-9]) ;; *) echo "bad part name in the manifest: $pname" >&2; exit 1 ;; esac
    [ -f "$in/$pname" ] || continue
    if [ "$(stat -c %s "$in/$pname")" = "$bytes" ] && [ "$(sha256sum "$in/$pname" | cut -d' ' -f1)" = "$sum" ]; then
        mv -f "$in/$pname" "$store/$pname"
        echo "stored $pname ($bytes bytes)"
    else
        echo "REFUSED $pname: size or checksum differs from the manifest" >&2
        status=1
    fi
done < "$in/MANIFEST"
missing=$(while read -r kind pname _; do [ "$kind" = part ] && [ ! -f "$store/$pname" ] && echo "$pname"; done < "$store/MANIFEST" || true)
echo "still expected: ${missing:-none}" | tr '\n' ' '
echo
exit $status
