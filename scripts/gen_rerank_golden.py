#!/usr/bin/env python3
"""Writes the fixtures that check ragd's cross-encoder code path against the
reference implementation on real weights:

  tests/fixtures/rerank_config.json        config.json of the TEST model
  tests/fixtures/rerank_head.safetensors   its pooler and classifier (F16)
  tests/fixtures/rerank_golden.jsonl       reference logits of >= 100 pairs

No registry package ships a pretrained cross-encoder (docs/internals/reranker.md lists
what was checked), so this builds a TEST cross-encoder: a Hugging Face
BertForSequenceClassification (num_labels=1) whose BERT weights are the real
all-MiniLM-L6-v2 encoder and whose pooler (384x384 + bias) and classifier
(1x384 + bias) are seeded random values. Its scores mean nothing; it exists
only to check that ragd computes exactly what transformers computes for a
BERT cross-encoder (pair encoding, token type ids, longest-first
truncation, padding masks, pooler, classifier). It is never offered as a
model.

The reference logits come from sentence-transformers' CrossEncoder loading
the saved test model (one pair per batch, so no padding in the reference),
with the activation switched off (raw logits). The head weights are rounded
to float16 before the reference runs, so the committed F16 file holds
exactly the values the reference used.

The unit test (tests/unit/test_cross_encoder.c) and the integration tests
assemble the same model at test time: config.json from the fixture, the
tokenizer files of the installed all-MiniLM-L6-v2, and a
model.safetensors.index.json that maps the encoder tensors to MiniLM's own
model.safetensors and the head tensors to rerank_head.safetensors.

Usage: scripts/gen_rerank_golden.py [MINILM_DIR]
  MINILM_DIR defaults to $RAGD_MODELS/all-MiniLM-L6-v2, else
  ./models/all-MiniLM-L6-v2. Re-runs itself in the reference virtualenv of
  scripts/gen_embedding_golden.py (build/embref-venv, or $RAGD_EMBREF_VENV)
  when the current Python lacks the pinned stack.

Each golden line: {"group": query number, "query", "passage", "query_hex",
"passage_hex" (UTF-8 bytes in hex), "tokens": the pair's length after
truncation, specials included, "truncated": bool, "logit": float rounded to
7 significant digits}.
"""
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_embedding_golden as emb  # noqa: E402  (same pinned stack and venv)
import refvenv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures"
OUT_CONFIG = FIX / "rerank_config.json"
OUT_HEAD = FIX / "rerank_head.safetensors"
OUT_GOLDEN = FIX / "rerank_golden.jsonl"
SEED = 20240917
TOKENIZER_FILES = ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]

LOREM = (
    "Retrieval-augmented generation combines a search index with a language model. "
    "Documents are split into chunks, each chunk is embedded into a dense vector, "
    "and at query time the nearest chunks are retrieved and placed into the prompt. "
)

# (query, passages): a few related, a few not, some long enough to be cut.
GROUPS = [
    ("what is the capital of france", [
        "Paris is the capital and most populous city of France.",
        "Berlin is the capital of Germany.",
        "France is a country in Western Europe with a long history.",
        "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
        "Bananas are rich in potassium.",
        "Lyon is the third-largest city of France, known for its cuisine.",
    ]),
    ("how do I reset my password", [
        "To reset your password, open Settings, choose Security and click Reset.",
        "Passwords must be at least twelve characters long.",
        "Our office is closed on public holidays.",
        "If you forgot your password, use the 'Forgot password' link on the sign-in page.",
        "Two-factor authentication adds a second step when you sign in.",
        "",
    ]),
    ("symptoms of vitamin D deficiency", [
        "Vitamin D deficiency can cause bone pain, muscle weakness and fatigue.",
        "Vitamin C is found in citrus fruit.",
        "Low vitamin D levels are associated with an increased risk of fractures in older adults.",
        "The sun emits ultraviolet radiation.",
        "Rickets in children is a classic sign of severe vitamin D deficiency.",
        "Stock markets fell sharply on Monday.",
    ]),
    ("python list comprehension example", [
        "squares = [x * x for x in range(10)]",
        "A list comprehension builds a list from an iterable in one expression: [f(x) for x in xs if p(x)].",
        "def add(a, b):\n    return a + b\n",
        "Java streams provide map and filter operations.",
        "for (let i = 0; i < arr.length; i++) { sum += arr[i]; }",
        "Python dictionaries map keys to values.",
    ]),
    ("Does aspirin reduce the risk of heart attack?", [
        "Aspirin inhibits cyclooxygenase, reducing prostaglandin synthesis and platelet aggregation.",
        "Low-dose aspirin lowers the risk of a first myocardial infarction in some adults, at a cost of bleeding.",
        "Heart attacks occur when blood flow to the heart muscle is blocked.",
        "Photosynthesis converts light energy into chemical energy stored in glucose.",
        "Ibuprofen is a nonsteroidal anti-inflammatory drug.",
        "The tenant shall pay rent on the first day of each calendar month.",
    ]),
    ("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e recipe", [
        "Cr\u00e8me br\u00fbl\u00e9e is a custard topped with a layer of caramelised sugar.",
        "Heat the cream with vanilla, whisk in the yolks and sugar, bake in a water bath, chill, then torch the sugar.",
        "Caf\u00e9 au lait is coffee with hot milk.",
        "\u00dcber die Br\u00fccke gehen wir morgen fr\u00fch.",
        "A recipe lists ingredients and steps.",
        "Le caf\u00e9 est ouvert tous les jours.",
    ]),
    ("\u5317\u4eac\u7684\u5929\u6c14", [
        "\u5317\u4eac\u4eca\u5929\u6674\uff0c\u6700\u9ad8\u6c14\u6e29\u4e8c\u5341\u5ea6\u3002",
        "\u4e0a\u6d77\u662f\u4e2d\u56fd\u6700\u5927\u7684\u57ce\u5e02\u4e4b\u4e00\u3002",
        "The weather in Beijing is dry in winter.",
        "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002",
        "Mixed \u4e2d\u6587 and English \u6df7\u5408 text.",
        "\U0001f600 \U0001f44d\U0001f3fd sunny \u2600\ufe0f",
    ]),
    ("what does an embedding model do", [
        "An embedding model maps text to a dense vector so that similar texts lie close together.",
        LOREM,
        LOREM * 12,  # longer than 512 tokens: the passage is cut
        "Embedding layers map token ids to vectors inside a neural network.",
        "A hash function maps data of arbitrary size to fixed-size values.",
        "The meeting is on 2024-03-15 at 14:30 in room B-204.",
    ]),
    ("how are documents chunked before indexing", [
        LOREM * 10,
        " ".join(f"Section {i}: chunks are cut at headings, then paragraphs, then sentences." for i in range(60)),
        "Chunks overlap by a few tokens so that a sentence cut at a boundary is still found.",
        "SELECT id, name FROM users WHERE age > 30 ORDER BY name;",
        "Structure-aware chunking keeps headings with the text below them.",
        "x" * 40,
    ]),
    ("rust borrow checker error", [
        "error[E0502]: cannot borrow `v` as mutable because it is also borrowed as immutable",
        "The borrow checker enforces that references do not outlive the data they point to.",
        "Rust is a systems programming language focused on safety.",
        "Go uses a garbage collector to manage memory.",
        "fn main() { let mut v = vec![1, 2, 3]; let first = &v[0]; v.push(4); println!(\"{}\", first); }",
        "https://doc.rust-lang.org/book/ch04-02-references-and-borrowing.html",
    ]),
    ("best hiking trails near the mountains", [
        "The ridge trail climbs 900 metres through pine forest to a lake below the summit.",
        "Mountain weather changes quickly; carry a rain jacket and water.",
        "The river flows through the city and into the sea.",
        "Hiking boots should be broken in before a long trek.",
        "The film won three awards at the festival.",
        "Trail map: https://example.com/trails?region=alps&difficulty=moderate#north",
    ]),
    ("CRISPR gene editing in human cells", [
        "CRISPR-Cas9 enables targeted genome editing in eukaryotic cells.",
        "BRCA1 mutations increase lifetime risk of breast and ovarian cancer.",
        "Cas9 is guided to its target by a short RNA complementary to the DNA sequence.",
        "Gene therapy delivers genetic material into a patient's cells.",
        "The mitochondria is the powerhouse of the cell.",
        " ".join(["CRISPR screens knock out every gene in turn to find those a cell needs."] * 50),
    ]),
    ("[SEP] special tokens [CLS] in a query", [
        "[SEP]",
        "[CLS] [SEP] [PAD] [MASK]",
        "Special tokens mark the start of the input and the boundary between its two texts.",
        "An ordinary sentence about nothing in particular.",
        "[UNK] stands for an unknown word piece.",
        "Tokens, tokens, tokens.",
    ]),
    ("THE QUICK BROWN FOX", [
        "The quick brown fox jumps over the lazy dog.",
        "the quick brown fox",
        "A fox is a small omnivorous mammal.",
        "QUICK BROWN FOXES ARE RARE",
        "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
        "The the the the the the the the the the.",
    ]),
    ("revenue growth in the third quarter", [
        "Revenue grew 12.5% year over year to $4.2B in Q3 2023.",
        "Operating margin fell two points on higher costs.",
        "The company reported results for the quarter ending September 30.",
        "Take 500 mg twice daily for 7 days; do not exceed 4 g/day.",
        "Version 1.2.3-rc.4+build.567 fixes CVE-2023-12345.",
        "Quarterly reports summarise sales, costs and profit.",
    ]),
    ("who wrote the contract clause about governing law", [
        "This Agreement is governed by the laws of the State of New York.",
        "The tenant shall pay rent on the first day of each calendar month.",
        "Either party may terminate this Agreement with thirty days' written notice.",
        "Governing law clauses choose which jurisdiction's law interprets the contract.",
        "The court dismissed the appeal.",
        "Contract law varies from country to country.",
    ]),
]


def long_query_group():
    """Query and passages both long: longest-first truncation cuts both."""
    rng = random.Random(SEED)
    words = ("data model vector search index query token chunk server cluster memory latency throughput neural "
             "network graph paper study patient result method protein gene cell climate energy market").split()
    query = " ".join(rng.choice(words) for _ in range(300))
    passages = [
        " ".join(rng.choice(words) for _ in range(400)),
        " ".join(rng.choice(words) for _ in range(250)),
        " ".join(rng.choice(words) for _ in range(600)),
        "A short passage beside a long query.",
        " ".join(rng.choice(words) for _ in range(100)),
        " ".join(rng.choice(words) for _ in range(215)),
    ]
    return (query, passages)


def generated_groups(n_groups):
    rng = random.Random(SEED + 1)
    words = ("river mountain city history music film game team player score court contract policy price "
             "market energy climate cell gene protein method result patient study paper").split()
    groups = []
    for _ in range(n_groups):
        q = " ".join(rng.choice(words) for _ in range(rng.choice([2, 3, 5, 8])))
        ps = [" ".join(rng.choice(words) for _ in range(rng.choice([5, 13, 34, 89, 144]))).capitalize() + "."
              for _ in range(6)]
        groups.append((q, ps))
    return groups


def all_groups():
    return GROUPS + [long_query_group()] + generated_groups(3)


def minilm_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    base = os.environ.get("RAGD_MODELS")
    return Path(base) / emb.MODEL_NAME if base else REPO / "models" / emb.MODEL_NAME


def build_model(src):
    """The test BertForSequenceClassification: MiniLM's encoder, seeded head."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification

    cfg = json.loads((src / "config.json").read_text())
    cfg.pop("_name_or_path", None)
    cfg.pop("transformers_version", None)
    cfg["architectures"] = ["BertForSequenceClassification"]
    cfg["id2label"] = {"0": "LABEL_0"}
    cfg["label2id"] = {"LABEL_0": 0}
    config = BertConfig(**cfg)
    assert config.num_labels == 1
    model = BertForSequenceClassification(config)
    state = load_file(str(src / "model.safetensors"))
    # position_ids is a buffer older checkpoints carry; transformers 5 recomputes it.
    encoder_state = {k: v for k, v in state.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    missing, unexpected = model.bert.load_state_dict(encoder_state, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("pooler.") for k in missing), missing
    gen = torch.Generator().manual_seed(SEED)
    H = config.hidden_size
    head = {
        # Wide enough that tanh is not saturated and logits spread over a few units.
        "bert.pooler.dense.weight": torch.randn(H, H, generator=gen) * (1.5 / H ** 0.5),
        "bert.pooler.dense.bias": torch.randn(H, generator=gen) * 0.1,
        "classifier.weight": torch.randn(1, H, generator=gen) * (4.0 / H ** 0.5),
        "classifier.bias": torch.randn(1, generator=gen) * 0.1,
    }
    head = {k: v.to(torch.float16).contiguous() for k, v in head.items()}
    with torch.no_grad():
        model.bert.pooler.dense.weight.copy_(head["bert.pooler.dense.weight"].float())
        model.bert.pooler.dense.bias.copy_(head["bert.pooler.dense.bias"].float())
        model.classifier.weight.copy_(head["classifier.weight"].float())
        model.classifier.bias.copy_(head["classifier.bias"].float())
    model.eval()
    return model, cfg, head


def ensure_stack(script):
    """Re-executes script in the embedding fixtures' venv (same pins)."""

    def ready():
        import sentence_transformers
        import torch

        return (torch.__version__.split("+")[0] == emb.TORCH_VERSION
                and sentence_transformers.__version__ == emb.ST_VERSION)

    refvenv.ensure(script, [f"torch=={emb.TORCH_VERSION}", f"sentence-transformers=={emb.ST_VERSION}"], ready,
                   "RAGD_EMBREF_VENV", "embref-venv")


def main():
    ensure_stack(__file__)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from safetensors.torch import save_file
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    src = minilm_dir()
    if not (src / "model.safetensors").exists():
        sys.exit(f"model not found at {src} (run `make models`)")
    model, cfg, head = build_model(src)

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        for f in TOKENIZER_FILES:
            shutil.copy(src / f, Path(tmp) / f)
        ce = CrossEncoder(tmp, device="cpu", activation_fn=torch.nn.Identity())
        tok = ce.tokenizer
        max_len = ce.max_seq_length
        assert max_len == 512, max_len
        groups = all_groups()
        rows = []
        for gi, (q, ps) in enumerate(groups):
            for p in ps:
                logit = float(ce.predict([(q, p)], batch_size=1, convert_to_numpy=True)[0])
                # Lists, as CrossEncoder passes them: a bare "" text_pair would
                # be taken for "no pair" and lose its [SEP].
                full = len(tok([q], [p])["input_ids"][0])
                cut = len(tok([q], [p], truncation=True, max_length=max_len)["input_ids"][0])
                rows.append({"group": gi, "query": q, "passage": p, "query_hex": q.encode().hex(),
                             "passage_hex": p.encode().hex(), "tokens": cut, "truncated": full > max_len,
                             "logit": float(f"{logit:.7g}")})
        # The batched reference must agree with the unbatched one (padding masks).
        batched = ce.predict([(r["query"], r["passage"]) for r in rows], batch_size=16, convert_to_numpy=True)
        worst = max(abs(float(b) - r["logit"]) for b, r in zip(batched, rows))
        assert worst < 1e-4, worst

    assert len(rows) >= 100, len(rows)
    FIX.mkdir(parents=True, exist_ok=True)
    save_file(head, str(OUT_HEAD), metadata={"format": "pt", "note": "ragd TEST cross-encoder head: seeded random"})
    OUT_CONFIG.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    with open(OUT_GOLDEN, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    n_trunc = sum(r["truncated"] for r in rows)
    spread = [r["logit"] for r in rows]
    print(f"wrote {len(rows)} pairs in {len(groups)} groups ({n_trunc} truncated at {max_len} tokens), "
          f"logits {min(spread):.3f}..{max(spread):.3f}, batched reference within {worst:.2e}")


if __name__ == "__main__":
    main()
