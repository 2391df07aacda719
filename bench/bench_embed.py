#!/usr/bin/env python3
"""Embedding speed: ragd's CPU encoder beside sentence-transformers (PyTorch,
CPU) on the same machine, in the same run, on the same texts.

    python3 bench/bench_embed.py [--seconds 5] [--repeat N] [--bin build-x/bench_embed ...]

Runs bench_embed (ragd; build/bench_embed unless --bin names another build's;
--bin given more than once runs each build, e.g. two variants of the encoder
side by side) and sentence-transformers at batch 1 and 64,
on short inputs (~18 tokens) and 256-token inputs, and prints sentences/s,
tokens/s and the ratio ragd / sentence-transformers for each build. The reference stack is
installed in its own venv (scripts/refvenv.py), not needed by make test."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import refvenv  # noqa: E402

TORCH_VERSION = "2.15.0"
ST_VERSION = "6.2.0"
REPO = Path(__file__).resolve().parents[1]
MODEL = Path(os.environ.get("RAGD_MODELS", REPO / "models")) / "all-MiniLM-L6-v2"


def texts(kind):
    if kind == "short":
        return [f"The quick brown fox number {i} jumps over the lazy dog near the river bank." for i in range(64)]
    words = "retrieval augmented generation keeps documents in sqlite and their vectors in faiss indexes".split()
    # Long enough to be cut at 256 tokens by both sides.
    return [" ".join(words[(i + j) % len(words)] for j in range(300)) + f" {i}" for i in range(64)]


def run_ragd(binary, kind, batch, seconds):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts(kind)))
    # bench_embed inherits this process's CPU affinity (--threads): the
    # encoder starts one thread per CPU it may run on.
    out = subprocess.run([binary, str(MODEL), f.name, str(batch), str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    return json.loads(out)


def run_st(model, kind, batch, seconds):
    data = texts(kind)
    tok = model.tokenizer
    model.encode(data[:batch], batch_size=batch)  # warm-up
    sentences = tokens = 0
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        chunk = [data[(i * batch + j) % len(data)] for j in range(batch)]
        model.encode(chunk, batch_size=batch)
        tokens += sum(min(len(tok(t)["input_ids"]), model.max_seq_length) for t in chunk)
        sentences += batch
        i += 1
    s = time.perf_counter() - start
    return {"sentences_per_s": sentences / s, "tokens_per_s": tokens / s}


def main():
    def ready():
        import sentence_transformers
        import torch

        return torch.__version__.split("+")[0] == TORCH_VERSION and sentence_transformers.__version__ == ST_VERSION

    refvenv.ensure(__file__, [f"torch=={TORCH_VERSION}", f"sentence-transformers=={ST_VERSION}"], ready,
                   "RAGD_EMBREF_VENV", "embref-venv")
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--bin", action="append", default=None,
                    help="a bench_embed executable to run (repeat to compare builds; default build/bench_embed)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="alternate ragd and sentence-transformers this many times per row and print medians "
                         "(the ratio is the median of the per-pair ratios), so that a busy machine's load "
                         "swings hit both sides alike")
    ap.add_argument("--threads", type=int, default=0,
                    help="restrict both sides to the first N CPUs (affinity for ragd, torch.set_num_threads and "
                         "affinity for PyTorch); default: all CPUs")
    args = ap.parse_args()
    bins = args.bin or [str(REPO / "build" / "bench_embed")]
    import torch
    from sentence_transformers import SentenceTransformer

    if args.threads > 0:
        cpus = sorted(os.sched_getaffinity(0))[:args.threads]
        os.sched_setaffinity(0, cpus)
        torch.set_num_threads(len(cpus))

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = SentenceTransformer(str(MODEL), device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}; {args.repeat} pair(s) of {args.seconds:g} s per row")
    for i, b in enumerate(bins):
        print(f"ragd{i + 1 if len(bins) > 1 else ''} = {b}")
    names = [f"ragd{i + 1}" if len(bins) > 1 else "ragd" for i in range(len(bins))]
    head = f"{'input':6} {'batch':>5}"
    for n in names:
        head += f" {n + ' sent/s':>12} {n + ' tok/s':>11}"
    head += f" {'ST sent/s':>10} {'ST tok/s':>9}"
    for n in names:
        head += f" {(n + '/ST') if len(bins) > 1 else 'ratio':>9}"
    print(head)

    def med(xs, key):
        return statistics.median(x[key] for x in xs)

    for kind in ("short", "long"):
        for batch in (1, 64):
            rs, ps = [[] for _ in bins], []
            for _ in range(max(1, args.repeat)):
                for i, b in enumerate(bins):
                    rs[i].append(run_ragd(b, kind, batch, args.seconds))
                ps.append(run_st(model, kind, batch, args.seconds))
            line = f"{kind:6} {batch:5d}"
            for r in rs:
                line += f" {med(r, 'sentences_per_s'):12.1f} {med(r, 'tokens_per_s'):11.0f}"
            line += f" {med(ps, 'sentences_per_s'):10.1f} {med(ps, 'tokens_per_s'):9.0f}"
            for r in rs:
                ratio = statistics.median(x["sentences_per_s"] / p["sentences_per_s"] for x, p in zip(r, ps))
                line += f" {ratio:9.2f}"
            print(line, flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
