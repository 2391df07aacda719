#!/usr/bin/env bash
# Installs the Debian packages ragd needs to build, run and test, if any is
# missing. Safe to run repeatedly: with everything present it does nothing.
set -euo pipefail
packages=(
    build-essential cmake pkg-config git ca-certificates xz-utils dpkg-dev
    libsqlite3-dev libmicrohttpd-dev libcjson-dev libxml2-dev
    libfaiss-dev libopenblas-dev liblapack-dev libutf8proc-dev libpcre2-dev
    python3 python3-venv python3-pip
    chromium chromium-driver
)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
