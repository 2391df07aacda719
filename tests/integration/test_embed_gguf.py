"""`ragd serve --embed-model FILE.gguf`: all-MiniLM-L6-v2 converted to GGUF in
llama.cpp's converter layout (scripts/make_bert_gguf.py, F32 and F16) gives
the sentence-transformers golden vectors and the directory model's token
counts through /v1/embeddings, and is listed by /v1/models under its file
name without ".gguf"."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, RagdServer, expect_json

MODEL_DIR = Path(os.environ.get("RAGD_MODELS", str(REPO / "models"))) / "all-MiniLM-L6-v2"
GOLDEN = [json.loads(line) for line in (REPO / "tests/fixtures/embedding_golden.jsonl").read_text().splitlines()]
# The directory model truncates at sentence_bert_config's max_seq_length
# (256); GGUF does not record it, so the GGUF model runs to
# bert.context_length (512) as llama.cpp does: texts the golden file shows
# truncated are compared separately. Texts with a NUL byte are left out: the
# HTTP layer ends a JSON string there, for any model.
CASES = [g for g in GOLDEN if g["text"].strip() and g["tokens"] < 256 and "\x00" not in g["text"]]
LONG = [g for g in GOLDEN if g["tokens"] >= 256 and "\x00" not in g["text"]]
# Minimum cosine to the golden vectors. F32 computes what the directory model
# computes (its test asks the same 0.9999; measured: 1 - cos below 1e-8). F16
# rounds the weight matrices to 11 significant bits; measured worst over
# these texts 0.99999935 (1 - cos 6.5e-7), so 0.9999 keeps a 150x margin and
# still catches a real error (a wrong tensor or tokenization gives 0.3-0.9).
MIN_COS = {"f32": 0.9999, "f16": 0.9999}


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture(scope="module", params=["f32", "f16"])
def gguf_server(request, tmp_path_factory):
    assert (MODEL_DIR / "config.json").exists(), f"no model at {MODEL_DIR}: run `make models`"
    tmp = tmp_path_factory.mktemp("gguf-" + request.param)
    path = tmp / f"minilm-{request.param}.gguf"
    subprocess.run([sys.executable, str(REPO / "scripts/make_bert_gguf.py"), str(MODEL_DIR), str(path),
                    "--outtype", request.param], check=True, timeout=300)
    s = RagdServer(tmp / "data", extra_args=("--embed-model", str(path)))
    yield request.param, s
    s.stop()


def embed(server, texts):
    out, tokens = [], 0
    for i in range(0, len(texts), 32):
        body = expect_json(server.post("/v1/embeddings", json={"input": texts[i:i + 32]}), 200)
        out += [d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])]
        tokens += body["usage"]["prompt_tokens"]
    return out, tokens


def test_models_lists_the_file(gguf_server):
    kind, s = gguf_server
    models = expect_json(s.get("/v1/models"), 200)["data"]
    assert [m["id"] for m in models] == [f"minilm-{kind}"]
    assert models[0]["dimensions"] == 384 and models[0]["kind"] == "embedding"


def test_matches_golden_vectors_and_token_counts(gguf_server):
    kind, s = gguf_server
    assert len(CASES) >= 100
    vecs, tokens = embed(s, [g["text"] for g in CASES])
    cos = [cosine(v, g["embedding"]) for v, g in zip(vecs, CASES)]
    worst = min(range(len(cos)), key=cos.__getitem__)
    print(f"{kind}: {len(cos)} texts, min cosine {cos[worst]:.8f} (1 - cos {1 - cos[worst]:.2e})")
    assert cos[worst] >= MIN_COS[kind], CASES[worst]["text"][:60]
    assert tokens == sum(g["tokens"] for g in CASES)
    for g in CASES[:20]:  # one text at a time: the same counts
        _, n = embed(s, [g["text"]])
        assert n == g["tokens"], g["text"][:60]


def test_long_texts_run_to_the_context_length(gguf_server):
    _, s = gguf_server
    assert LONG, "the golden file has no truncated texts"
    for g in LONG[:3]:
        vecs, n = embed(s, [g["text"]])
        assert 256 < n <= 512, (n, g["text"][:60])
        assert abs(math.sqrt(sum(x * x for x in vecs[0])) - 1.0) < 1e-4
