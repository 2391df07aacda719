#!/usr/bin/env python3
"""Writes tests/fixtures/lmrerank_hf_golden.jsonl: the yes/no relevance
scores that Hugging Face transformers (LlamaForCausalLM, float32, eager
attention, CPU) computes for the causal-LM reranker's golden prompts with
the default generator's weights. tests/unit/test_lmrerank.c requires ragd's
reranker at its default precision (f32 activations, model/lm_reranker.h) to
give the same scores within 1e-3 and the same order.

The prompts are the token ids of tests/fixtures/lmrerank_golden.jsonl
(scripts/gen_lmrerank_golden.py: llama.cpp's tokenizer, which the test also
checks ragd reproduces), so no tokenizer is involved here. The weights are
the GGUF's, dequantized by gguf-py into the Hugging Face directory that
scripts/gen_hf_decoder_golden.py builds (Q/K rows un-permuted, the same
config): transformers then computes the model the GGUF stores, in float32,
without llama.cpp's 8-bit rounding of activations.

Usage: scripts/gen_lmrerank_hf_golden.py [GGUF]
  GGUF and the virtualenv as for scripts/gen_hf_decoder_golden.py (the same
  pinned torch, transformers and gguf; $RAGD_HFDECREF_VENV). Not needed by
  `make test`.

Line 1 is {"meta": {...}}: versions, the GGUF's size and SHA-256, the
SHA-256 of the source fixture, yes/no ids. Every further line is the pair on
the same line of lmrerank_golden.jsonl (line i + 1 there):
  group, n_ids, ids_sha256   the prompt (SHA-256 of its ids as little-endian
                             int32), so the test can check the two fixtures
                             line up;
  yes, no, score             the two logits and yes - no in float32;
  score_f64                  the same model run in float64: how far float32
                             rounding alone moves this reference.
"""
import hashlib
import json
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_hf_decoder_golden as hfg  # noqa: E402  (HF directory from the GGUF, pins, venv)

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "fixtures" / "lmrerank_golden.jsonl"
OUT = REPO / "tests" / "fixtures" / "lmrerank_hf_golden.jsonl"


def ids_sha256(ids):
    return hashlib.sha256(b"".join(struct.pack("<i", i) for i in ids)).hexdigest()


def main():
    hfg.ensure_stack(__file__)
    import copy
    from importlib.metadata import version

    import torch
    import transformers
    from gguf import GGUFReader

    torch.set_num_threads(2)
    path = hfg.model_path()
    if not path.exists():
        sys.exit(f"{path}: no such file (pass the GGUF path, or run `make models`)")
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    meta_src = json.loads(lines[0])["meta"]
    pairs = [json.loads(x) for x in lines[1:]]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta_src["model_sha256"]:
        sys.exit(f"{path} is not the GGUF {SOURCE.name} was made with")
    yes, no = meta_src["yes_id"], meta_src["no_id"]
    reader = GGUFReader(str(path))
    with tempfile.TemporaryDirectory(prefix="ragd-lmrerank-hf-") as tmp:
        _, _, theta = hfg.write_hf_dir(reader, Path(tmp))
        model = hfg.load_reference(Path(tmp), theta)
    model64 = copy.deepcopy(model).double()
    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "gguf": version("gguf"),
            "dtype": "float32", "attn_implementation": "eager", "model": path.name, "model_bytes": len(data),
            "model_sha256": hashlib.sha256(data).hexdigest(),
            "source": SOURCE.name, "source_sha256": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
            "yes_id": yes, "no_id": no}
    out = [json.dumps({"meta": meta})]
    worst64 = 0.0
    with torch.no_grad():
        for p in pairs:
            x = torch.tensor([p["ids"]], dtype=torch.long)
            last = model(input_ids=x, use_cache=False).logits[0, -1]
            last64 = model64(input_ids=x, use_cache=False).logits[0, -1]
            y, n = float(last[yes]), float(last[no])
            s = float(last[yes] - last[no])  # float32 difference, as ragd takes it
            s64 = float(last64[yes] - last64[no])
            worst64 = max(worst64, abs(s - s64))
            out.append(json.dumps({"group": p["group"], "n_ids": len(p["ids"]), "ids_sha256": ids_sha256(p["ids"]),
                                   "yes": round(y, 6), "no": round(n, 6), "score": round(s, 6),
                                   "score_f64": round(s64, 6)}))
    OUT.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(pairs)} pairs; float32 vs float64 scores differ by at most {worst64:.2e}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
