#!/usr/bin/env bash
# Splits a model file that is larger than one GPU-machine call carries
# (64 MiB with the working tree) into numbered parts plus a manifest, HERE.
# The parts travel in consecutive calls to the same warm machine, where
# scripts/gpu/collect_parts.sh keeps them and scripts/gpu/join_model.sh puts
# the file back together and checks it (see scripts/gpu/README.md).
#
#   scripts/gpu/split_model.sh MODEL_FILE OUT_DIR [PART_MIB]   (default 25)
#
# OUT_DIR/part-00, part-01, ... and OUT_DIR/MANIFEST: one line per part
# ("part NAME BYTES SHA256") and one for the whole file ("file NAME BYTES
# SHA256"), the name being the file's path relative to the models dir
# (its directory and file name). The parts are byte ranges of the file, not
# a re-encoding: the joined file is the same file, bit for bit.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 MODEL_FILE OUT_DIR [PART_MIB]" >&2; exit 2; }
model=$1 out=$2 mib=${3:-25}
[ -f "$model" ] || { echo "$model: no such file" >&2; exit 1; }
case $mib in '' | *[!0-9]*) echo "PART_MIB must be a whole number" >&2; exit 2 ;; esac
[ "$mib" -ge 1 ] && [ "$mib" -le 60 ] || { echo "PART_MIB must be 1..60" >&2; exit 2; }
name="$(basename "$(dirname "$model")")/$(basename "$model")"
mkdir -p "$out"
rm -f "$out"/part-* "$out/MANIFEST"
split -b "$((mib * 1024 * 1024))" -d -a 2 "$model" "$out/part-"
{
    for p in "$out"/part-*; do
        echo "part $(basename "$p") $(stat -c %s "$p") $(sha256sum "$p" | cut -d' ' -f1)"
    done
    echo "file $name $(stat -c %s "$model") $(sha256sum "$model" | cut -d' ' -f1)"
} > "$out/MANIFEST"
cat "$out/MANIFEST"
