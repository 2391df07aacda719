#!/usr/bin/env python3
"""Writes tests/fixtures/embedding_golden.jsonl: reference sentence embeddings
of a fixed set of texts by sentence-transformers (PyTorch, CPU) with the
default embedding model. tests/unit/test_encoder.c requires ragd's encoder
to reach cosine similarity >= 0.9999 with every vector, at batch size 1 and
at batch size 32.

Usage: scripts/gen_embedding_golden.py [MODEL_DIR]
  MODEL_DIR defaults to $RAGD_MODELS/all-MiniLM-L6-v2, else
  ./models/all-MiniLM-L6-v2 (installed by `make models`); it is loaded from
  that local path with the hub switched off (HF_HUB_OFFLINE=1). The script
  re-runs itself in a virtualenv holding the pinned reference stack when the
  current Python lacks it (build/embref-venv, or $RAGD_EMBREF_VENV). That
  stack (torch from plain PyPI, which on Linux also pulls NVIDIA runtime
  wheels, a few GB) is needed only to regenerate the fixture, never by
  `make test`.

Each line is one JSON object: {"text": ..., "text_hex": its UTF-8 bytes in
hex (exact even with a NUL), "tokens": the model's token count after
truncation, "embedding": [384 floats]}, the floats rounded to 7 significant
digits. Texts longer than the model's
max_seq_length (256 tokens) are truncated by the reference exactly as by
ragd (at the end), and several texts here are that long on purpose.
"""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refvenv  # noqa: E402

TORCH_VERSION = "2.15.0"
ST_VERSION = "6.2.0"
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "embedding_golden.jsonl"
MODEL_NAME = "all-MiniLM-L6-v2"


def ensure_stack():
    """Re-executes this script in a venv holding the pinned reference stack."""

    def ready():
        import sentence_transformers
        import torch

        return torch.__version__.split("+")[0] == TORCH_VERSION and sentence_transformers.__version__ == ST_VERSION

    refvenv.ensure(__file__, [f"torch=={TORCH_VERSION}", f"sentence-transformers=={ST_VERSION}"], ready,
                   "RAGD_EMBREF_VENV", "embref-venv")


def model_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    base = os.environ.get("RAGD_MODELS")
    return Path(base) / MODEL_NAME if base else REPO / "models" / MODEL_NAME


LOREM = (
    "Retrieval-augmented generation combines a search index with a language model. "
    "Documents are split into chunks, each chunk is embedded into a dense vector, "
    "and at query time the nearest chunks are retrieved and placed into the prompt. "
)

CASES = [
    # short and plain
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "a",
    ".",
    "?",
    "ok",
    "Yes.",
    "No!",
    "42",
    "3.14159265358979",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "How do I reset my password?",
    "To reset your password, open Settings, choose Security and click Reset.",
    "I can't believe it's not butter; isn't it?",
    "state-of-the-art, well-known, re-enter, e-mail",
    "Don't stop\u2014won't stop\u2026 \"quoted\" 'single' `back`",
    # empty-ish
    "",
    " ",
    "\n\n\t  ",
    "[SEP]",
    "[CLS] [SEP] [PAD]",
    "\u200b\u200b",
    # accents and other Latin scripts
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 cr\u00e8me br\u00fbl\u00e9e",
    "\u00dcber die Br\u00fccke gehen wir morgen fr\u00fch.",
    "El ni\u00f1o come pi\u00f1a en la ma\u00f1ana.",
    "\u0141\u00f3d\u017a jest du\u017cym miastem w Polsce.",
    "S\u00e3o Paulo \u00e9 a maior cidade do Brasil.",
    "Ce\u0301sar vs C\u00e9sar (combining vs precomposed)",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac: \u03ba\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u044f\u0437\u044b\u043a: \u043f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    # CJK
    "\u4f60\u597d\u4e16\u754c",
    "\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002\u6771\u4eac\u306f\u5927\u304d\u3044\u3002",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    "Mixed \u4e2d\u6587 and English \u6df7\u5408 text.",
    "\u6f22\u5b57\u304b\u306a\u4ea4\u3058\u308a\u6587",
    # emoji and symbols
    "I love pizza \U0001f355\U0001f355\U0001f355",
    "\U0001f600 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f",
    "\U0001f680 launch at 10:00 UTC \u2192 orbit by 10:09",
    "\u00a9 2024 \u2122 \u00ae \u00b0C \u00b1 \u2264 \u2265 \u221e \u2211 \u222b",
    "\u2018smart quotes\u2019 and \u201cdouble ones\u201d",
    # URLs, emails, paths
    "https://example.com/path/to/page?query=1&lang=en#section-2",
    "Visit http://www.python.org or https://docs.rs/serde/latest/serde/ for docs.",
    "Contact me at jane.doe+rag@example.co.uk or @jdoe on social media.",
    "/usr/local/lib/python3.11/site-packages/torch/__init__.py",
    "C:\\Users\\Admin\\Documents\\report_final_v2.docx",
    # code
    "def add(a, b):\n    return a + b\n",
    "int main(void) { printf(\"%d\\n\", 42); return 0; }",
    "SELECT id, name FROM users WHERE age > 30 ORDER BY name;",
    "for (let i = 0; i < arr.length; i++) { sum += arr[i]; }",
    "<div class=\"card\"><p>Hello &amp; welcome</p></div>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "git commit -m 'fix: handle empty input' && git push origin main",
    "x = np.linalg.solve(A.T @ A + lam * np.eye(n), A.T @ y)",
    # numbers, dates, units
    "The meeting is on 2024-03-15 at 14:30 in room B-204.",
    "Revenue grew 12.5% year over year to $4.2B in Q3 2023.",
    "Take 500 mg twice daily for 7 days; do not exceed 4 g/day.",
    "Version 1.2.3-rc.4+build.567 fixes CVE-2023-12345.",
    # long words, repetition, casing
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "the the the the the the the the the the",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "CamelCaseIdentifiersLikeThisOne and snake_case_ones_too",
    "hello" + "!" * 40,
    # science, medicine, law (SciFact-like)
    "Aspirin inhibits cyclooxygenase, reducing prostaglandin synthesis.",
    "CRISPR-Cas9 enables targeted genome editing in eukaryotic cells.",
    "Vitamin D deficiency is associated with increased risk of fractures.",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "BRCA1 mutations increase lifetime risk of breast and ovarian cancer.",
    "The tenant shall pay rent on the first day of each calendar month.",
    "This Agreement is governed by the laws of the State of New York.",
    # questions and queries
    "how to cook pasta",
    "best laptop for programming 2024",
    "why is the sky blue",
    "symptoms of the flu vs a cold",
    "query: what does an embedding model do?",
    "passage: An embedding model maps text to a vector.",
    "Represent this sentence for searching relevant passages: ranking",
    # sentences of varied length
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome and everyone should watch it this weekend.",
    "The cat sits outside while the dog plays in the garden.",
    "Machine learning models require large amounts of training data to generalize well.",
    "Database transactions guarantee atomicity, consistency, isolation and durability.",
    "Whitespace   between    words   is    collapsed     by  the  tokenizer.",
    "Line one.\nLine two.\r\nLine three.\tTabbed.",
    "Control\x07chars\x1bin\x00text",
    "Soft\u00adhyphen and non\u00a0breaking space and zero\u200bwidth",
]

# Long inputs (more than 256 tokens, truncated at the end) and mid-length ones.
LONG = [
    LOREM * 8,
    (LOREM * 3) + " ".join(f"item{i}" for i in range(200)),
    " ".join(["\u4f60\u597d\u4e16\u754c\u3002"] * 120),
    "def f(x):\n" + "".join(f"    y{i} = x * {i} + {i * i}\n" for i in range(80)),
    " ".join(f"word{i % 37}" for i in range(600)),
    "caf\u00e9 " * 300,
    LOREM * 2,
    LOREM + "Short tail.",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 30),
    "\U0001f600 " * 300,
]


def generated(n):
    """Deterministic pseudo-sentences of mixed length from a small vocabulary."""
    rng = random.Random(20240601)
    words = (
        "data model vector search index query token chunk server cluster memory "
        "latency throughput neural network graph paper study patient result method "
        "protein gene cell climate energy market price policy court contract river "
        "mountain city history music film game team player score"
    ).split()
    out = []
    for i in range(n):
        k = rng.choice([3, 5, 8, 13, 21, 34, 55, 89, 144])
        s = " ".join(rng.choice(words) for _ in range(k))
        out.append(s.capitalize() + ".")
    return out


def texts():
    return CASES + LONG + generated(24)


def main():
    ensure_stack()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    md = model_dir()
    if not (md / "config.json").exists():
        sys.exit(f"model not found at {md} (run `make models`)")
    model = SentenceTransformer(str(md), device="cpu")
    ts = texts()
    assert len(ts) >= 100, len(ts)
    # One text at a time: no padding at all in the reference.
    with torch.no_grad():
        embs = [model.encode([t], batch_size=1, convert_to_numpy=True, normalize_embeddings=False)[0] for t in ts]
    tok = model.tokenizer
    OUT.parent.mkdir(parents=True, exist_ok=True)
    n_trunc = 0
    with open(OUT, "w", encoding="utf-8") as f:
        for t, emb in zip(ts, embs):
            n_tok = len(tok(t, add_special_tokens=True)["input_ids"])
            n_trunc += n_tok > model.max_seq_length
            rec = {"text": t, "text_hex": t.encode("utf-8").hex(), "tokens": min(n_tok, model.max_seq_length), "embedding": [float(f"{x:.7g}") for x in emb]}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {len(ts)} embeddings ({n_trunc} truncated at {model.max_seq_length} tokens) to {OUT}")


if __name__ == "__main__":
    main()
