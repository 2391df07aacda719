#!/usr/bin/env bash
# Copies the working tree as the device tool sends it (git's tracked files
# and its untracked, not ignored ones; no .git) into DEST, for the
# rehearsals dry_run.sh and sim_rehearsal.sh.
#
#   scripts/gpu/copy_tree.sh DEST
#
# Files only (a deleted file git still tracks is skipped); names go
# NUL-separated, so none is read as shell code.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=$1
mkdir -p "$dest"
(cd "$root" && { git ls-files -z; git ls-files -z --others --exclude-standard; } |
    while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf -) |
    tar -xf - -C "$dest"
