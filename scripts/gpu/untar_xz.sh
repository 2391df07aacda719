#!/usr/bin/env bash
# Unpacks an .tar.xz ARCHIVE into DEST with tar and xz, or, where the
# machine has no xz, with Python's lzma and tarfile modules:
#
#   scripts/gpu/untar_xz.sh ARCHIVE DEST
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 ARCHIVE DEST" >&2; exit 2; }
mkdir -p "$2"
if command -v xz > /dev/null; then
    xz -dc "$1" | tar -xf - -C "$2"
else
    python3 -c 'import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as t:
    t.extractall(sys.argv[2])' "$1" "$2"
fi
