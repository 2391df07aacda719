#!/usr/bin/env bash
# Lists, sorted, the repository files that ragd's binaries are compiled
# from (CMake files, the C/CUDA sources and headers, the web assets, the
# unit tests and the C benchmarks), relative to ROOT:
#
#   scripts/gpu/sources.sh ROOT
#
# prebuild.sh records each one's SHA-256 beside the prebuilt binaries;
# check_prebuilt.sh lists them again on the GPU machine and uses the
# binaries only when the two lists and every checksum agree. With git
# (here) the list is git's (tracked plus untracked files it does not
# ignore); without it (the GPU machine's copy of the tree may have no .git)
# every file under the same folders, which there is the same set.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 ROOT" >&2; exit 2; }
cd "$1"
pattern='^(CMakeLists\.txt|cmake/.*|(api|common|store|model|ingest|index|rerank|generate|rag|web)/.*|tests/(unit|tools)/.*|bench/[^/]*\.(c|h))$'
if git rev-parse --show-toplevel > /dev/null 2>&1 && [ "$(git rev-parse --show-toplevel)" = "$(pwd -P)" ]; then
    git ls-files -co --exclude-standard
else
    find CMakeLists.txt cmake api common store model ingest index rerank generate rag web tests/unit tests/tools bench \
        -type f 2> /dev/null
fi | grep -E "$pattern" | grep -vE '(^|/)__pycache__/|\.pyc$' | while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done |
    LC_ALL=C sort -u
