#!/usr/bin/env python3
"""Writes model/wordpiece_tables.c: the Unicode character classes exactly as
Hugging Face `tokenizers` (pinned below) sees them in BertNormalizer and
BertPreTokenizer.

Why generated: the library classifies characters with its own, partly old,
Unicode tables (the `unicode_categories` crate for control / non-spacing mark
/ punctuation, `unicode-normalization-alignments` for NFD, Rust's std for
lowercase and White_Space), which differ from any one utf8proc release for a
few hundred code points. Probing the pinned library for every code point
gives the classes it really uses, so ragd's tokenizer matches it exactly
whatever utf8proc the machine has. utf8proc still supplies the canonical
decompositions and combining classes (both are stable across Unicode
versions); the table only says which code points the library decomposes.

Usage: scripts/gen_wordpiece_tables.py   (re-runs itself in a virtualenv
with tokenizers==TOKENIZERS_VERSION when the current Python lacks it)
"""
import os
import subprocess
import unicodedata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refvenv  # noqa: E402

TOKENIZERS_VERSION = "0.23.3"
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "model" / "wordpiece_tables.c"


def ensure_tokenizers():
    """Re-executes this script in a venv holding the pinned tokenizers."""

    def ready():
        import tokenizers

        return tokenizers.__version__ == TOKENIZERS_VERSION

    refvenv.ensure(__file__, [f"tokenizers=={TOKENIZERS_VERSION}"], ready, "RAGD_TOKREF_VENV", "tokref-venv")


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def emit_ranges(f, name, cps, doc):
    rs = ranges(cps)
    f.write(f"/* {doc} ({len(cps)} code points) */\n")
    f.write(f"const rg_cp_range {name}[] = {{\n")
    for i in range(0, len(rs), 4):
        f.write("    " + " ".join("{0x%X, 0x%X}," % (a, b) for a, b in rs[i : i + 4]) + "\n")
    f.write("};\n")
    f.write(f"const size_t {name}_n = {len(rs)};\n\n")


def main():
    ensure_tokenizers()
    from tokenizers.normalizers import NFD, BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    clean = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    strip = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    nfd = NFD()
    pre = BertPreTokenizer()

    removed, space, decomp, mn, ws, punct = set(), set(), set(), set(), set(), set()
    lowmap = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        r = clean.normalize_str(ch)
        if r == "":
            removed.add(c)
        elif r == " " and ch != " ":
            space.add(c)
        elif r != ch:
            sys.exit(f"unexpected clean_text result for U+{c:04X}: {r!r}")
        d = nfd.normalize_str(ch)
        if d != ch:
            decomp.add(c)
        else:
            s = strip.normalize_str(ch)
            if s == "":
                mn.add(c)
            elif s != ch:
                sys.exit(f"unexpected strip_accents result for U+{c:04X}: {s!r}")
        low = lower.normalize_str(ch)
        if low != ch:
            if len(low) > 2:
                sys.exit(f"lowercase of U+{c:04X} is longer than 2 code points")
            lowmap.append((c, ord(low[0]), ord(low[1]) if len(low) > 1 else 0))
        toks = [t for t, _ in pre.pre_tokenize_str("a" + ch + "b")]
        if toks == ["a", "b"]:
            ws.add(c)
        elif toks == ["a", ch, "b"]:
            punct.add(c)
        elif toks != ["a" + ch + "b"]:
            sys.exit(f"unexpected pre-tokenization around U+{c:04X}: {toks!r}")

    # Canonical combining classes as the library's NFD knows them (older
    # Unicode: later marks are starters to it). Class values never change
    # once assigned, so a mark's class is Python's or 0; probing reordering
    # against U+0334 (class 1) and U+0345 (class 240) tells which.
    def reorders(s):
        return nfd.normalize_str(s) != s

    ccc = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF or c in decomp:
            continue
        k = unicodedata.combining(chr(c))
        if k == 0:
            continue
        ch = chr(c)
        if c in (0x334, 0x345) or reorders(ch + "\u0334") or reorders("\u0345" + ch):
            ccc.append((c, k))

    # The strip-accents result of a decomposable code point must be its NFD
    # with the non-spacing marks removed (what ragd computes).
    for c in decomp:
        want = "".join(x for x in nfd.normalize_str(chr(c)) if ord(x) not in mn)
        if strip.normalize_str(chr(c)) != want:
            sys.exit(f"strip_accents of U+{c:04X} is not NFD minus Mn")

    with open(OUT, "w") as f:
        f.write(
            "/* wordpiece_tables.c - GENERATED by scripts/gen_wordpiece_tables.py from\n"
            f" * Hugging Face tokenizers {TOKENIZERS_VERSION}; do not edit. The character classes\n"
            " * its BertNormalizer and BertPreTokenizer use, probed code point by code\n"
            " * point (see the script for why). */\n"
            '#include "model/wordpiece_tables.h"\n\n'
            f'const char wp_tables_source[] = "tokenizers {TOKENIZERS_VERSION}";\n\n'
        )
        emit_ranges(f, "wp_removed", removed, "clean_text drops these (NUL, U+FFFD, Cc, Cf, Co)")
        emit_ranges(f, "wp_space", space, "clean_text maps these to U+0020")
        emit_ranges(f, "wp_decomposable", decomp, "NFD changes these (decomposition from utf8proc)")
        emit_ranges(f, "wp_nonspacing", mn, "strip_accents drops these (Mn)")
        emit_ranges(f, "wp_whitespace", ws, "BertPreTokenizer splits on and drops these")
        emit_ranges(f, "wp_punct", punct, "BertPreTokenizer isolates these")
        rs = []
        for c, k in ccc:
            if rs and rs[-1][1] == c - 1 and rs[-1][2] == k:
                rs[-1][1] = c
            else:
                rs.append([c, c, k])
        f.write(f"/* canonical combining class of the non-starters ({len(ccc)} code points) */\n")
        f.write("const rg_cp_class wp_ccc[] = {\n")
        for i in range(0, len(rs), 4):
            f.write("    " + " ".join("{0x%X, 0x%X, %d}," % tuple(r) for r in rs[i : i + 4]) + "\n")
        f.write("};\n")
        f.write(f"const size_t wp_ccc_n = {len(rs)};\n\n")
        f.write(f"/* lowercase: code point -> one or two code points ({len(lowmap)} entries) */\n")
        f.write("const rg_cp_lower wp_lower[] = {\n")
        for i in range(0, len(lowmap), 4):
            f.write(
                "    " + " ".join("{0x%X, 0x%X, 0x%X}," % e for e in lowmap[i : i + 4]) + "\n"
            )
        f.write("};\n")
        f.write(f"const size_t wp_lower_n = {len(lowmap)};\n")
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
