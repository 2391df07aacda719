"""Assembles the TEST cross-encoder of scripts/gen_rerank_golden.py into a
model directory: a fixture for checking ragd's cross-encoder code path
(the real all-MiniLM-L6-v2 encoder under a seeded random pooler and
classifier), never a reranker to use. Its scores mean nothing.

The directory is a sharded Hugging Face checkpoint made of links: config.json
(tests/fixtures/rerank_config.json), MiniLM's tokenizer files, and a
model.safetensors.index.json mapping the encoder tensors to MiniLM's
model.safetensors and the pooler and classifier to
tests/fixtures/rerank_head.safetensors. Used by the integration tests and
bench/bench_rerank.py; tests/unit/test_cross_encoder.c builds the same in C.
Needs only the Python standard library."""
import json
import os
import struct
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
NAME = "ragd-test-cross-encoder"
TOKENIZER_FILES = ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]


def default_minilm():
    return Path(os.environ.get("RAGD_MODELS", str(REPO / "models"))) / "all-MiniLM-L6-v2"


def tensor_names(path):
    """Tensor names in a safetensors file's header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


def assemble(out_dir, minilm=None):
    """Writes the test model into out_dir/ragd-test-cross-encoder; returns that path."""
    minilm = Path(minilm or default_minilm()).resolve()
    d = Path(out_dir) / NAME
    d.mkdir(parents=True, exist_ok=True)
    links = {f: minilm / f for f in TOKENIZER_FILES}
    links["encoder.safetensors"] = minilm / "model.safetensors"
    links["head.safetensors"] = FIXTURES / "rerank_head.safetensors"
    links["config.json"] = FIXTURES / "rerank_config.json"
    for name, target in links.items():
        if not (d / name).exists():
            os.symlink(target.resolve(), d / name)
    weight_map = {k: "encoder.safetensors" for k in tensor_names(minilm / "model.safetensors")
                  if not k.startswith("pooler.")}  # MiniLM's own pooler is not this model's
    weight_map.update({k: "head.safetensors" for k in tensor_names(FIXTURES / "rerank_head.safetensors")})
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
    return d
