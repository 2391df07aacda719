#!/usr/bin/env bash
# Splits a model file that is larger than one GPU-machine call carries
# (64 MiB with the working tree) into numbered parts plus a manifest, HERE.
# The parts travel in consecutive calls to the same warm machine, where
# scripts/gpu/collect_parts.sh keeps them and scripts/gpu/join_model.sh puts
# the file back together and checks it (see scripts/gpu/README.md).
#
#   scripts/gpu/split_model.sh MODEL_FILE OUT_DIR [PART_MIB [PARTS_PER_CALL]]
#                                               (defaults 25 and 2)
#
# OUT_DIR/call-1, call-2, ...: what one call carries, PARTS_PER_CALL parts
# (part-00, part-01, ...) and a copy of MANIFEST, which has one line per
# part ("part NAME BYTES SHA256") and one for the whole file ("file NAME
# BYTES SHA256"), the name being the file's path relative to the models dir
# (its directory and file name). The parts are byte ranges of the file, not
# a re-encoding: the joined file is the same file, bit for bit.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 MODEL_FILE OUT_DIR [PART_MIB [PARTS_PER_CALL]]" >&2; exit 2; }
model=$1 out=$2 mib=${3:-25} per_call=${4:-2}
case $per_call in '' | *[!0-9]* | 0) echo "PARTS_PER_CALL must be a positive whole number" >&2; exit 2 ;; esac
[ -f "$model" ] || { echo "$model: no such file" >&2; exit 1; }
case $mib in '' | *[!0-9]*) echo "PART_MIB must be a whole number" >&2; exit 2 ;; esac
[ "$mib" -ge 1 ] && [ "$mib" -le 60 ] || { echo "PART_MIB must be 1..60" >&2; exit 2; }
name="$(basename "$(dirname "$model")")/$(basename "$model")"
mkdir -p "$out"
rm -rf "$out"/part-* "$out"/call-* "$out/MANIFEST"
split -b "$((mib * 1024 * 1024))" -d -a 2 "$model" "$out/part-"
{
    for p in "$out"/part-*; do
        echo "part $(basename "$p") $(stat -c %s "$p") $(sha256sum "$p" | cut -d' ' -f1)"
    done
    echo "file $name $(stat -c %s "$model") $(sha256sum "$model" | cut -d' ' -f1)"
} > "$out/MANIFEST"
i=0
for p in "$out"/part-*; do
    dir=$out/call-$((i / per_call + 1))
    mkdir -p "$dir"
    mv "$p" "$dir/"
    cp "$out/MANIFEST" "$dir/"
    i=$((i + 1))
done
cat "$out/MANIFEST"
for d in "$out"/call-*; do echo "$(basename "$d"): $(cd "$d" && ls part-* | tr '\n' ' ')($(du -sm "$d" | cut -f1) MB)"; done
