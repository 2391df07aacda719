#!/usr/bin/env bash
# Puts a model split by scripts/gpu/split_model.sh back together from
# STORE_DIR into MODELS_DIR/<name in the manifest>, checks every part and
# the whole file against the manifest (size and SHA-256), and only then
# moves the file into place (a temporary name until it checks out).
#
#   scripts/gpu/join_model.sh STORE_DIR MODELS_DIR
#
# Exit 1, with the reason, when a part is missing or any check fails.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 STORE_DIR MODELS_DIR" >&2; exit 2; }
store=$1 models=$2
man=$store/MANIFEST
[ -f "$man" ] || { echo "$man is missing" >&2; exit 1; }
read -r _ name bytes sum < <(grep '^file ' "$man")
case $name in /* | *..* | '') echo "bad file name in the manifest: $name" >&2; exit 1 ;; esac
dest=$models/$name
mkdir -p "$(dirname "$dest")"
tmp=$dest.joining
: > "$tmp"
while read -r kind pname pbytes psum; do
    [ "$kind" = part ] || continue
    p=$store/$pname
    [ -f "$p" ] || { echo "$pname is missing from $store" >&2; rm -f "$tmp"; exit 1; }
    if [ "$(stat -c %s "$p")" != "$pbytes" ] || [ "$(sha256sum "$p" | cut -d' ' -f1)" != "$psum" ]; then
        echo "$pname: size or checksum differs from the manifest" >&2
        rm -f "$tmp"
        exit 1
    fi
    cat "$p" >> "$tmp"
done < "$man"
if [ "$(stat -c %s "$tmp")" != "$bytes" ] || [ "$(sha256sum "$tmp" | cut -d' ' -f1)" != "$sum" ]; then
    echo "the joined file differs from the manifest's $name ($bytes bytes, $sum)" >&2
    rm -f "$tmp"
    exit 1
fi
mv -f "$tmp" "$dest"
echo "joined $dest ($bytes bytes, sha256 $sum)"
