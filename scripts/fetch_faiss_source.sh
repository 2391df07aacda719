#!/usr/bin/env bash
# Fetches the Debian source package of faiss that matches the installed
# libfaiss-dev and unpacks it into DEST, for building the FAISS C API (which
# Debian does not ship compiled). The deb-src entries are derived from this
# machine's own apt sources and kept in a private apt state under DEST, so
# nothing outside DEST is changed and no host name is written anywhere.
set -euo pipefail
dest=${1:?usage: fetch_faiss_source.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
if [ -f "$dest/src/c_api/Index_c.cpp" ]; then exit 0; fi

apt_dir="$dest/apt"
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
: > "$apt_dir/empty.list"
# Every deb line/stanza of the machine's sources becomes a deb-src one.
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -e 's/^Types:.*/Types: deb-src/' "$f" > "$apt_dir/parts/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    grep -E '^[[:space:]]*deb[[:space:]]' "$f" | sed -e 's/^[[:space:]]*deb[[:space:]]/deb-src /' \
        >> "$apt_dir/parts/derived.list" || true
done
opts=(-o "Dir::Etc::SourceList=$apt_dir/empty.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
apt-get "${opts[@]}" -qq update
version=$(dpkg-query -W -f='${source:Version}' libfaiss-dev 2>/dev/null || true)
cd "$dest"
rm -rf dl && mkdir dl && cd dl
if [ -n "$version" ]; then
    apt-get "${opts[@]}" -qq source --download-only "faiss=$version" || apt-get "${opts[@]}" -qq source --download-only faiss
else
    apt-get "${opts[@]}" -qq source --download-only faiss
fi
orig=$(ls faiss_*.orig.tar.* | head -n 1)
rm -rf "$dest/src.tmp" && mkdir "$dest/src.tmp"
tar -xf "$orig" -C "$dest/src.tmp" --strip-components=1
rm -rf "$dest/src" && mv "$dest/src.tmp" "$dest/src"
echo "faiss source: $orig -> $dest/src"
