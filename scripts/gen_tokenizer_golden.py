#!/usr/bin/env python3
"""Writes tests/fixtures/wordpiece_golden.jsonl: the reference tokenization
of a fixed set of texts by Hugging Face `tokenizers` (pinned below) with the
default embedding model's tokenizer.json. tests/unit/test_tokenizer.c must
reproduce every record token for token (ids, type ids and offsets).

Usage: scripts/gen_tokenizer_golden.py [MODEL_DIR]
  MODEL_DIR defaults to $RAGD_MODELS/all-MiniLM-L6-v2, else
  ./models/all-MiniLM-L6-v2 (installed by `make models`). The script re-runs
  itself in a virtualenv holding tokenizers==TOKENIZERS_VERSION when the
  current Python lacks it (build/tokref-venv, or $RAGD_TOKREF_VENV).

Each line is one JSON object:
  kind      "single" or "pair"
  text      the text (pair: also "pair"), and text_hex / pair_hex, its
            UTF-8 bytes in hex (exact even for NUL and control characters)
  max_len   0 = no truncation; side "end" (HF "right") or "start" ("left")
  ids, type_ids, seq (-1 special, 0 text, 1 pair)
  offsets   [[start, end], ...] BYTE offsets into text (or pair, per seq);
            the library reports code-point offsets, converted here
"""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refvenv  # noqa: E402

TOKENIZERS_VERSION = "0.23.3"
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "wordpiece_golden.jsonl"
MODEL_NAME = "all-MiniLM-L6-v2"


def ensure_tokenizers():
    """Re-executes this script in a venv holding the pinned tokenizers."""

    def ready():
        import tokenizers

        return tokenizers.__version__ == TOKENIZERS_VERSION

    refvenv.ensure(__file__, [f"tokenizers=={TOKENIZERS_VERSION}"], ready, "RAGD_TOKREF_VENV", "tokref-venv")


def model_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    base = os.environ.get("RAGD_MODELS")
    return Path(base) / MODEL_NAME if base else REPO / "models" / MODEL_NAME


LONG_WORD = "pneumonoultramicroscopicsilicovolcanoconiosis" * 3  # 135 chars: one [UNK]

# Hand-written cases: each exercises something the tokenizer must get right.
CASES = [
    # plain English, casing, contractions
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX",
    "I can't believe it's not butter; isn't it?",
    "unaffable embeddings tokenization",
    "Don't stop—won't stop… \"quoted\" 'single' `back`",
    "e-mail, re-enter, state-of-the-art, well‐known (U+2010 hyphen)",
    "",
    " ",
    "a",
    "A",
    ".",
    "...",
    "?!?!",
    "   leading and trailing spaces   ",
    # numbers
    "3.14159 2,718 1e-10 -42 +7 0x1F 1_000_000",
    "Call 555-0123 or +1 (800) 555-0199 ext. 42",
    "2024-01-15T10:30:00Z 12:45:59.123",
    "$100 €50 £30 ¥1000 ₹500 ₿0.5",
    "50% off, 3/4 cup, 1½ teaspoons, x² + y³, H₂O",
    "١٢٣ ٤٥٦ ०१२३ ๑๒๓",
    # URLs, e-mail, code
    "https://example.com/path/to/page?query=1&b=two#frag",
    "http://user:pass@sub.example.co.uk:8080/a%20b",
    "Contact john.doe+tag@example.org for info",
    "def foo(x): return x ** 2  # square",
    "for (int i = 0; i < n; i++) { sum += a[i]; }",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "<div class=\"x\"><p>Hello</p></div>",
    "std::vector<int> v; v.push_back(1); // C++",
    "$ ls -la | grep '.txt' > out.log 2>&1",
    "camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case",
    "git commit -m \"fix: handle \\n in paths\"",
    "regex: ^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$",
    "C:\\Users\\Name\\Documents\\file.txt",
    "#hashtag @mention ~tilde ^caret |pipe \\backslash",
    # accents and Latin
    "café résumé naïve façade coöperate",
    "Crème brûlée à la carte",
    "ÀÁÂÃÄÅ àáâãäå ÈÉÊË èéêë",
    "Ñandú piñata año señor",
    "Øresund Ærø Åland œuvre Œdipe",
    "Straße Fußball GROSS groß ẞ",
    "Dvořák Škoda Łódź Ćevapi Żubrówka",
    "Ångström Ørsted Þórr Ðóra",
    "İstanbul ıi İI Iı DİYARBAKIR",
    "ǅemal ǈ ǋ Ǳ ǲ",
    "ﬁnance ﬂow ﬀ (ligatures)",
    "ℌello ℍ ℕ ℤ ™ ℃ ℉ Å",
    # combining marks, decomposed forms
    "cafe\u0301 re\u0301sume\u0301",
    "e\u0301\u0302\u0303\u0304 multi-combining",
    "a\u0316\u0301 a\u0301\u0316 ordering",
    "Z\u0351\u0308\u0364a\u0310\u0305l\u030Dg\u0306o zalgo",
    "n\u0303 vs ñ",
    "\u0301 leading combining mark",
    "\u0308\u0308\u0308",
    "e\u0301\u0316 reordered after decomposition, \u00e9\u0316 too",
    "x\u1ab5\u1b44y marks reordered: spans go by position",
    "\u0d15\u0d3b\u0301 a mark newer than the library's NFD tables",
    "\u0f73\u0f75\u0f81 Tibetan vowel signs",
    # Greek, Cyrillic
    "Ελληνικά γλώσσα ΣΊΣΥΦΟΣ σίσυφος",
    "ὈΔΥΣΣΕΎΣ Ὀδυσσεύς ᾼ ᾳ ῼ",
    "Русский язык: Съешь же ещё этих мягких французских булок!",
    "Україна Ґ ґ Ї ї Є є Й й",
    "Ё ё й Й",
    # CJK and East Asian
    "你好世界",
    "我爱自然语言处理。今天天气很好！",
    "日本語のテキスト、ひらがなとカタカナ。",
    "東京タワーは333メートルです",
    "한국어 텍스트 안녕하세요",
    "中文English混合text测试",
    "𠀀𠀁 𪜀 𫝀 𫠠 𬺰 (CJK extensions)",
    "豈 更 車 (CJK compatibility)",
    "㐀㐁 䶵 (extension A)",
    "　全角スペース　と　ＡＢＣ　１２３",
    "（括弧）「引用」『二重』【隅付き】",
    "ｶﾀｶﾅ ﾊﾝｶｸ",
    "ㄅㄆㄇ ㆠ (bopomofo)",
    "〇 〡 〢 々 〆",
    # other scripts
    "مرحبا بالعالم",
    "اللغة العربية جميلة، أليس كذلك؟",
    "עברית שלום עולם",
    "नमस्ते दुनिया",
    "हिन्दी भाषा में यह एक वाक्य है।",
    "ภาษาไทยสวัสดีชาวโลก",
    "বাংলা ভাষা",
    "தமிழ் மொழி",
    "ქართული ენა",
    "Հայերեն լեզու",
    "አማርኛ ቋንቋ",
    "ᚠᚢᚦᚨᚱᚲ runes",
    "ꦗꦮ Javanese",
    "ᏣᎳᎩ Cherokee ꭰꭱ",
    "Ⴀ ⴀ Georgian Asomtavruli",
    "𐐀𐐨 Deseret",
    "𞤀𞤢 Adlam",
    "Ⰰⰰ Ⱟ ⱟ Glagolitic",
    "Ꟁ ꟁ Ꟗ ꟗ Ꞻ ꞻ newer Latin",
    "ᲐᲑᲒ Mtavruli",
    # emoji
    "I love pizza 🍕🍕🍕",
    "😀😃😄😁 grinning faces",
    "👍🏽 thumbs up medium skin tone",
    "👨‍👩‍👧‍👦 family ZWJ sequence",
    "🏳️‍🌈 rainbow flag",
    "🇺🇸🇫🇷🇯🇵 flags",
    "❤️ ♥ ☺ ✓ ✗ ★ ☆",
    "🥰🥳🧠🫠🫶 newer emoji",
    "keycap 1️⃣ #️⃣",
    "emoji🎉between🎉words",
    # whitespace variants and controls
    "tab\tseparated\tvalues",
    "line\nbreaks\r\nand\rcarriage",
    "vertical\x0btab and form\x0cfeed",
    "nbsp\u00a0here thin\u2009space em\u2003space",
    "ideographic\u3000space narrow\u202fnbsp",
    "line\u2028separator paragraph\u2029separator",
    "ogham\u1680space mathematical\u205fspace",
    "zero\u200bwidth\u200cjoiner\u200dtest",
    "word\u2060joiner\ufeffBOM",
    "soft\u00adhyphen",
    "bidi \u202eoverride\u202c and \u200fRLM\u200e",
    "null\x00byte",
    "bell\x07 escape\x1b[31m red",
    "del\x7f char and \x85 NEL",
    "replacement \ufffd char",
    "private use \ue000\uf8ff \U000f0000",
    "noncharacters \ufdd0 \ufffe \uffff",
    "unassigned \u0378 \u0860x \U0001fb99",
    "info\x1fseparator\x1erecord\x1dgroup",
    "variation\ufe0fselector\ufe0e text",
    "tag chars \U000e0041\U000e0062 flag 🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    "mongolian\u180evowel separator",
    "arabic\u061cletter mark \u0600 number sign",
    # punctuation
    "¿Qué? ¡Hola!",
    "«guillemets» ‹single› „low“ ”high”",
    "em—dash en–dash minus−sign hyphen‐",
    "bullet • middle · ellipsis …",
    "section § pilcrow ¶ dagger † ‡",
    "math ∀x∈ℝ: x²≥0 ∑ ∏ √ ∞ ≠ ≤",
    "arrows → ← ↑ ↓ ⇒ ⇔",
    "currency sign ¤ degree ° plus-minus ±",
    "٪ ، ؛ ؟ Arabic punctuation",
    "। ॥ Devanagari danda",
    "、。〃〈〉《》「」 CJK punctuation",
    "﹏ ﹐ ﹑ ＂ ＃ ％ fullwidth punctuation",
    "‰ ‱ ′ ″ ‴ ※ ‼ ⁇ ⁈",
    "⸮ ⸘ ⹀ ⹏ newer punctuation",
    "a.b,c;d:e!f?g",
    "((nested (parens)))",
    "____underscores____",
    "---dashes---",
    "~!@#$%^&*()_+`-={}|[]\\:\";'<>?,./",
    # long words and WordPiece edge cases
    LONG_WORD,
    "x" * 100,
    "y" * 101,
    "é" * 100,
    "é" * 101,
    "ab" * 50 + " next",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a long word",
    "hippopotomonstrosesquippedaliophobia",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "qwxzqwxzqwxz zxqw",
    "##notprefix ## # ###",
    "[UNK] [CLS] [SEP] [PAD] [MASK] special tokens in text",
    "[unk] [cls] lowercase look-alikes",
    "x[SEP]y[CLS]z",
    "[[SEP]] [SEP[SEP]]",
    "[MASK]ed language model",
    # mixed
    "The café in 北京 serves crème brûlée 🍮 for ¥30!",
    "Émile Zola wrote «J'accuse…!» in 1898.",
    "Ünïcödé ïs fün — ηδονή — удовольствие — 乐趣",
    "COVID-19 (SARS-CoV-2) vaccines: Pfizer/BioNTech, Moderna.",
    "The p-value was < 0.05 (n=1,234; 95% CI: [1.2, 3.4]).",
    "Dr. Smith's lab @ MIT, room 32-G882.",
    "IPv6 address 2001:0db8:85a3::8a2e:0370:7334",
    "MD5: d41d8cd98f00b204e9800998ecf8427e",
    "UUID 123e4567-e89b-12d3-a456-426614174000",
    "Base64: SGVsbG8gV29ybGQhCg==",
    "𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄 𝔉𝔯𝔞𝔨𝔱𝔲𝔯 mathematical alphanumerics",
    "Ⓒⓘⓡⓒⓛⓔⓓ 🅐🅑 enclosed",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ",
    "Ⅻ ⅻ roman numerals Ⅳ",
    "scientific: α-helix, β-sheet, γ-ray, Δx, μm, Ω",
    "Kelvin K and Ohm Ω and Angstrom Å signs",
    "ǈubljana Ǆ ǆ ǅ titlecase digraphs",
    "ΣΑΣ final sigma ς σ Σ",
    "Ĳsselmeer ĳ",
    "ŉ ǰ ΐ ΰ և ẖ ẗ ẘ ẙ ẚ",
    "ﬀﬁﬂﬃﬄﬅﬆ ﬓﬔﬕﬖﬗ",
    "Hangul jamo: ᄀ ᅡ ᆨ and syllable 각",
    "ǖ ǘ ǚ ǜ pinyin tones",
    "Tiếng Việt có dấu: Đường phố Hà Nội",
    "Türkçe ğüşıöç ĞÜŞİÖÇ",
    "Română: ș ț Ș Ț ş ţ",
    "Polski: zażółć gęślą jaźń",
    "Čeština: příliš žluťoučký kůň úpěl ďábelské ódy",
    "Íslenska: Þetta er prófun",
    "Malti: ħ ġ ż Ħ Ġ Ż",
    "Esperanto: ĉ ĝ ĥ ĵ ŝ ŭ",
    "Cymraeg: ŵ ŷ Ŵ Ŷ",
    "Hawaiʻi ʻokina ʼ modifier",
    "Yorùbá: ẹ ọ ṣ ẹ́ ọ̀",
    "Lithuanian: į ų ė Į Ų Ė",
]

# Pairs, some truncated (max_len counts the special tokens).
PAIRS = [
    ("What is the capital of France?", "Paris is the capital and largest city of France.", 0, "end"),
    ("query", "a much longer passage " * 20, 32, "end"),
    ("a much longer question " * 20, "short passage", 32, "end"),
    ("both are long " * 30, "and this one too " * 30, 40, "end"),
    ("both are long " * 30, "and this one too " * 30, 41, "start"),
    ("équipe café", "naïve résumé 東京", 0, "end"),
    ("", "empty first", 0, "end"),
    ("empty second", "", 0, "end"),
    ("short", "short", 3, "end"),
    ("token " * 10, "token " * 10, 15, "start"),
    ("[SEP] inside", "the pair [CLS]", 0, "end"),
    ("How many tokens?", "🍕 " * 50, 20, "end"),
]

# Single texts truncated.
TRUNCATED = [
    ("The quick brown fox jumps over the lazy dog " * 10, 16, "end"),
    ("The quick brown fox jumps over the lazy dog " * 10, 16, "start"),
    ("a b c d e f", 2, "end"),
    ("a b c d e f", 3, "start"),
    ("unaffable " * 20, 9, "end"),
]


def random_texts(seed, count):
    """Mixed-Unicode strings from a fixed seed (the same generator as the
    integration test's, to keep the fixture reproducible)."""
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "       \t\n",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»—–…‘’“”•·",
        "àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÉÎÕÜßœæøåĳŉſ",
        "\u0300\u0301\u0302\u0303\u0308\u0327\u0316\u0345\u20dd\u1ab0",
        "αβγδεζηθικλμνξοπρσςτυφχψωΑΒΓΔΣΩάέήίόύώ",
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВЁЖЯ",
        "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
        "あいうえおかきくけこアイウエオカキクケコ",
        "가나다라마바사아자차카타파하한국어",
        "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
        "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशसह्ािीुूेैोौं",
        "กขฃคฅฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮะาำิีึืุู",
        "😀😃😄👍🏽🍕🎉❤️🇺🇸👨‍👩‍👧\u200d\ufe0f",
        "\x00\x01\x07\x1b\x7f\x85\u200b\u200c\u200d\u2060\ufeff\ufffd\ue000\u00ad",
        "\u00a0\u2000\u2009\u3000\u2028\u1680\u202f",
        "ⰀⰰꟀꟁꞺꞻᲐ𐐀𞤀ǅǈİıΣ",
    ]
    out = []
    for _ in range(count):
        n = rng.randint(0, 60)
        chars = []
        for _ in range(n):
            r = rng.random()
            if r < 0.08:  # any code point but surrogates
                c = rng.randint(0, 0x10FFFF)
                while 0xD800 <= c <= 0xDFFF:
                    c = rng.randint(0, 0x10FFFF)
                chars.append(chr(c))
            elif r < 0.12:  # anything in the BMP
                c = rng.randint(0x80, 0xFFFF)
                while 0xD800 <= c <= 0xDFFF:
                    c = rng.randint(0x80, 0xFFFF)
                chars.append(chr(c))
            else:
                chars.append(rng.choice(rng.choice(pools)))
        out.append("".join(chars))
    return out


def byte_offsets(text, offsets):
    """Code-point offsets -> byte offsets into text's UTF-8."""
    pos = [0]
    for ch in text:
        pos.append(pos[-1] + len(ch.encode("utf-8")))
    return [[pos[s], pos[e]] for s, e in offsets]


def record(tok, kind, text, pair=None, max_len=0, side="end"):
    if max_len:
        tok.enable_truncation(max_len, strategy="longest_first", direction="right" if side == "end" else "left")
    else:
        tok.no_truncation()
    enc = tok.encode(text, pair) if pair is not None else tok.encode(text)
    seq = [-1 if s is None else s for s in enc.sequence_ids]
    offs = []
    for (s, e), q in zip(enc.offsets, seq):
        src = pair if q == 1 else text
        offs.append(byte_offsets(src, [(s, e)])[0] if q >= 0 else [0, 0])
    r = {"kind": kind, "text": text, "text_hex": text.encode("utf-8").hex()}
    if pair is not None:
        r["pair"] = pair
        r["pair_hex"] = pair.encode("utf-8").hex()
    r.update(max_len=max_len, side=side, ids=enc.ids, type_ids=enc.type_ids, seq=seq, offsets=offs)
    return r


def main():
    ensure_tokenizers()
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    mdir = model_dir()
    tj = mdir / "tokenizer.json"
    if not tj.exists():
        sys.exit(f"{tj} not found: run `make models` (or pass the model directory)")
    tok = Tokenizer.from_file(str(tj))
    tok.no_padding()
    # The same tokenizer built from vocab.txt, as the C test also loads it.
    vtok = BertWordPieceTokenizer(str(mdir / "vocab.txt"), lowercase=True)
    vtok.no_padding()

    records = []
    texts = CASES + random_texts(20240601, 60)
    for t in texts:
        records.append(record(tok, "single", t))
    for t, m, side in TRUNCATED:
        records.append(record(tok, "single", t, max_len=m, side=side))
    for a, b, m, side in PAIRS:
        records.append(record(tok, "pair", a, b, m, side))

    for r in records:
        v = record(vtok._tokenizer, r["kind"], r["text"], r.get("pair"), r["max_len"], r["side"])
        if v["ids"] != r["ids"] or v["offsets"] != r["offsets"]:
            sys.exit(f"vocab.txt and tokenizer.json disagree on {r['text']!r}")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=True) + "\n")
    n_single = sum(r["kind"] == "single" for r in records)
    print(f"wrote {OUT.relative_to(REPO)}: {n_single} single, {len(records) - n_single} pair records")


if __name__ == "__main__":
    main()
