#!/usr/bin/env python3
"""Reranking speed: ragd's cross-encoder beside sentence-transformers'
CrossEncoder (PyTorch) on the same machine, in the same run, on the same
model and pairs.

    python3 bench/bench_rerank.py [--seconds 5] [--batch 32] [--bin build/bench_rerank] [--device cpu]

The model is the TEST cross-encoder (scripts/rerank_test_model.py: the real
all-MiniLM-L6-v2 encoder under the seeded head of
tests/fixtures/rerank_head.safetensors); its speed is that of any
MiniLM-L6 cross-encoder (ms-marco-MiniLM-L-6-v2 has the same shape), its
scores mean nothing. Requests of 64 and 256 pairs of one query with
passages of about 200 tokens each; both sides score them in batches of
--batch pairs, sorted by length. Prints pairs/s, tokens/s and the ratio
ragd / sentence-transformers, after checking that the reference
reproduces the golden logits. The reference stack comes from the venv of
scripts/gen_embedding_golden.py (re-executes itself there when needed).

    python3 bench/bench_rerank.py --kind lm [--seconds 5] [--threads 2] [--bin build/bench_rerank]

The causal-LM (yes/no) reranker on the default generator GGUF
(SmolLM2-135M-Instruct Q4_1), at both precisions (f32, the default, and q8;
model/lm_reranker.h), beside llama.cpp (llama-cpp-python from the venv
of scripts/gen_llama_golden.py) scoring the same prompts the same way: the
query's prompt prefix evaluated once, each passage's rest after it (the KV
cache cut back to the prefix), the last position's logits read. --pairs
64,256 by default (the 256-pair round takes a few minutes); both sides use
--threads threads (ragd's correctness against llama.cpp on these prompts is
tests/unit/test_lmrerank.c's job)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import gen_rerank_golden  # noqa: E402
import rerank_test_model  # noqa: E402

WORDS = ("retrieval augmented generation keeps documents in sqlite and their vectors in faiss indexes while a "
         "cross encoder reads the query and each candidate passage together to score how well they match").split()
QUERY = "how does a cross encoder rerank retrieved passages"


def passages(n):
    # ~200 tokens each (all these words are single WordPiece tokens).
    return [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(190)) + f" {i}" for i in range(n)]


def st_model(tmp):
    """The test model as a plain transformers checkpoint for CrossEncoder."""
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import CrossEncoder

    model, _, _ = gen_rerank_golden.build_model(rerank_test_model.default_minilm())
    head = load_file(str(rerank_test_model.FIXTURES / "rerank_head.safetensors"))
    with torch.no_grad():  # the committed head, not a regenerated one
        model.bert.pooler.dense.weight.copy_(head["bert.pooler.dense.weight"].float())
        model.bert.pooler.dense.bias.copy_(head["bert.pooler.dense.bias"].float())
        model.classifier.weight.copy_(head["classifier.weight"].float())
        model.classifier.bias.copy_(head["classifier.bias"].float())
    d = Path(tmp) / "st-model"
    model.save_pretrained(d)
    for f in rerank_test_model.TOKENIZER_FILES:
        shutil.copy(rerank_test_model.default_minilm() / f, d / f)
    return CrossEncoder(str(d), device="cpu", activation_fn=torch.nn.Identity())


def run_ragd(binary, model_dir, pairs_file, n, batch, seconds, device):
    out = subprocess.run([binary, str(model_dir), pairs_file, str(n), str(batch), str(seconds), device],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def run_st(ce, n, batch, seconds):
    ps = passages(n)
    pairs = [(QUERY, p) for p in ps]
    tok = ce.tokenizer
    n_tok = sum(len(x) for x in tok([q for q, _ in pairs], [p for _, p in pairs], truncation=True)["input_ids"])
    ce.predict(pairs, batch_size=batch)  # warm-up
    done = tokens = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        ce.predict(pairs, batch_size=batch)
        done += n
        tokens += n_tok
    s = time.perf_counter() - start
    return {"pairs_per_s": done / s, "tokens_per_s": tokens / s}


def lm_prompts(llm, n):
    """llama.cpp's ids of the reranker prompts of n bench pairs, built as
    scripts/gen_lmrerank_golden.py builds them: (prefix, [rest, ...])."""
    import gen_lmrerank_golden as g

    def tok(text, bos=False, special=False):
        return llm.tokenize(text.encode("utf-8"), add_bos=bos, special=special)

    tail = tok(g.TAIL, special=True)
    prefix = tok(g.HEAD, bos=True, special=True) + tok(" " + QUERY) + tok(g.MID)
    room = g.MAX_TOKENS - len(prefix) - len(tail)
    return prefix, [tok(" " + p)[:room] + tail for p in passages(n)]


def run_llama(llm, prefix, rests, seconds):
    import llama_cpp
    import numpy as np

    n_vocab = llm.n_vocab()
    yes, no = llm.tokenize(b"yes", add_bos=False, special=False)[0], llm.tokenize(b"no", add_bos=False)[0]

    def one_round():
        scores = []
        llm.reset()
        llm.eval(prefix)
        for r in rests:
            llm.n_tokens = len(prefix)  # the cache is cut back to the prefix
            llm.eval(r)
            row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
            scores.append(float(row[yes] - row[no]))
        return scores

    first = one_round()  # warm-up
    n_tok = sum(len(prefix) + len(r) for r in rests)
    done = tokens = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        one_round()
        done += len(rests)
        tokens += n_tok
    s = time.perf_counter() - start
    return first, {"pairs_per_s": done / s, "tokens_per_s": tokens / s}


def main_lm(args):
    import gen_llama_golden as llref
    import refvenv

    def ready():
        import llama_cpp

        return llama_cpp.__version__ == llref.LLAMA_CPP_PYTHON

    # the llama.cpp reference venv of scripts/gen_llama_golden.py, re-running this script there
    os.environ.setdefault("CMAKE_ARGS", llref.CMAKE_ARGS)
    refvenv.ensure(__file__, ["--no-binary", "llama-cpp-python", f"llama-cpp-python=={llref.LLAMA_CPP_PYTHON}"],
                   ready, "RAGD_LLAMAREF_VENV", "llamaref-venv")
    import llama_cpp

    model = llref.REPO / "models" / llref.MODEL_FILE
    if os.environ.get("RAGD_MODELS"):
        model = Path(os.environ["RAGD_MODELS"]) / llref.MODEL_FILE
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=2048, n_batch=2048, n_ubatch=2048, n_threads=args.threads,
                          logits_all=False, verbose=False)
    for n in args.pairs:
        prefix, rests = lm_prompts(llm, n)
        with tempfile.TemporaryDirectory() as tmp:
            pairs_file = Path(tmp) / "pairs.tsv"
            pairs_file.write_text("".join(f"{QUERY}\t{p}\n" for p in passages(n)))
            ours = {}
            for prec in ("f32", "q8"):  # the default (transformers' scores) and llama.cpp's arithmetic
                out = subprocess.run([args.bin, str(model), str(pairs_file), str(n), "1", str(args.seconds),
                                      str(args.threads)], capture_output=True, text=True, check=True,
                                     env=dict(os.environ, RAGD_RERANK_PRECISION=prec)).stdout
                ours[prec] = json.loads(out)
        _, ref = run_llama(llm, prefix, rests, args.seconds)
        if n == args.pairs[0]:
            print(f"machine: {os.cpu_count()} CPUs; llama-cpp-python {llama_cpp.__version__}; threads {args.threads}; "
                  f"prompts of {len(prefix) + len(rests[0])} tokens ({len(prefix)} shared)")
        for prec, o in ours.items():
            print(f"{n:4d} pairs x ~200 tokens: ragd {prec:3s} {o['pairs_per_s']:8.2f} pairs/s "
                  f"({o['tokens_per_s']:7.0f} tok/s)   llama.cpp {ref['pairs_per_s']:8.2f} pairs/s "
                  f"({ref['tokens_per_s']:7.0f} tok/s)   ratio {o['pairs_per_s'] / ref['pairs_per_s']:.2f}", flush=True)


def main():
    if "--kind" in sys.argv and sys.argv[sys.argv.index("--kind") + 1:][:1] == ["lm"]:
        ap = argparse.ArgumentParser()
        ap.add_argument("--kind")
        ap.add_argument("--seconds", type=float, default=5)
        ap.add_argument("--threads", type=int, default=2)
        ap.add_argument("--pairs", type=lambda v: [int(x) for x in v.split(",")], default=[64, 256],
                        help="requests' pair counts, comma-separated (default 64,256)")
        ap.add_argument("--bin", default=str(REPO / "build" / "bench_rerank"))
        return main_lm(ap.parse_args())
    gen_rerank_golden.ensure_stack(__file__)
    os.environ["HF_HUB_OFFLINE"] = "1"
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--bin", default=str(REPO / "build" / "bench_rerank"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--kind", default="cross-encoder", choices=["cross-encoder", "lm"])
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = rerank_test_model.assemble(tmp)
        ce = st_model(tmp)
        pairs_file = Path(tmp) / "pairs.tsv"
        pairs_file.write_text("".join(f"{QUERY}\t{p}\n" for p in passages(256)))
        # The reference side must be the fixture's model (ragd's side is
        # checked against the same golden logits by test_cross_encoder).
        golden = [json.loads(x) for x in (REPO / "tests/fixtures/rerank_golden.jsonl").read_text().splitlines()[:12]]
        got = ce.predict([(g["query"], g["passage"]) for g in golden], batch_size=12)
        worst = max(abs(float(a) - g["logit"]) for a, g in zip(got, golden))
        assert worst < 1e-4, f"the reference model is not the fixture's: {worst}"
        print(f"machine: {os.cpu_count()} CPUs; torch {torch.__version__} threads {torch.get_num_threads()}; "
              f"batch {args.batch}")
        for n in (64, 256):
            ours = run_ragd(args.bin, model_dir, str(pairs_file), n, args.batch, args.seconds, args.device)
            ref = run_st(ce, n, args.batch, args.seconds)
            print(f"{n:4d} pairs x ~200 tokens: ragd {ours['pairs_per_s']:8.1f} pairs/s "
                  f"({ours['tokens_per_s']:9.0f} tok/s, {ours['device'][:40]})   "
                  f"sentence-transformers {ref['pairs_per_s']:8.1f} pairs/s ({ref['tokens_per_s']:9.0f} tok/s)   "
                  f"ratio {ours['pairs_per_s'] / ref['pairs_per_s']:.2f}")


if __name__ == "__main__":
    main()
