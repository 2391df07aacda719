#!/usr/bin/env python3
"""Generator speed on the CPU: ragd's decoder beside llama.cpp
(llama-cpp-python, the reference venv of scripts/gen_llama_golden.py) on the
same machine, in the same run, with the same GGUF and the same token ids.

    python3 bench/bench_decode.py [--bin build/bench_decode] [--threads 2]
                                  [--prompt 512] [--gen 64] [--seqs 16] [GGUF]

Measures prompt tokens/s (one 512-token prompt, best of 3) and generated
tokens/s at batch 1 (greedy, one token per step after the prompt), both
with the same thread count; ragd also at --seqs sequences decoded together.
Prints each side and the ratio ragd / llama.cpp."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import gen_llama_golden as golden  # noqa: E402
import refvenv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def prompt_ids(llm, n):
    text = (golden.LONG_RAG + golden.LONG_STORY + golden.LONG_CODE) * 8
    ids = llm.tokenize(text.encode(), add_bos=False, special=False)
    if len(ids) < n:
        sys.exit(f"prompt text has only {len(ids)} tokens")
    return ids[:n]


def bench_llama(llm, llama_cpp, ids, n_gen):
    import numpy as np

    n_vocab = llm.n_vocab()

    def last():
        p = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(p, shape=(n_vocab,))))

    best = 1e30
    for _ in range(3):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        best = min(best, time.perf_counter() - t0)
    tok = last()
    t0 = time.perf_counter()
    for _ in range(n_gen):
        llm.eval([tok])
        tok = last()
    gen = time.perf_counter() - t0
    return {"prompt_tps": len(ids) / best, "gen_tps": n_gen / gen}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf", nargs="?", default=None)
    ap.add_argument("--bin", default=str(REPO / "build" / "bench_decode"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--seqs", type=int, default=16)
    args = ap.parse_args()
    def ready():
        import llama_cpp

        return llama_cpp.__version__ == golden.LLAMA_CPP_PYTHON

    # the golden script's pinned, CPU-only llama-cpp-python venv
    os.environ.setdefault("CMAKE_ARGS", golden.CMAKE_ARGS)
    refvenv.ensure(__file__, ["--no-binary", "llama-cpp-python", f"llama-cpp-python=={golden.LLAMA_CPP_PYTHON}"],
                   ready, "RAGD_LLAMAREF_VENV", "llamaref-venv")
    import llama_cpp

    base = os.environ.get("RAGD_MODELS")
    model = args.gguf or str((Path(base) if base else REPO / "models") / golden.MODEL_FILE)
    llm = llama_cpp.Llama(model_path=model, n_ctx=args.prompt + args.gen + 8, n_batch=args.prompt,
                          n_threads=args.threads, n_threads_batch=args.threads, logits_all=False, verbose=False)
    ids = prompt_ids(llm, args.prompt)
    with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as f:
        f.write(" ".join(map(str, ids)))
    try:
        out = subprocess.run([args.bin, model, f.name, str(args.gen), str(args.threads), str(args.seqs)],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    ragd = json.loads(out)
    ref = bench_llama(llm, llama_cpp, ids, args.gen)
    print(f"model {Path(model).name}, {args.threads} threads, prompt {args.prompt} tokens, {args.gen} generated")
    print(f"{'':28}{'ragd':>10}{'llama.cpp':>12}{'ratio':>8}")
    for key, label in (("prompt_tps", "prompt tokens/s"), ("gen_tps", "generated tokens/s (1 seq)")):
        print(f"{label:28}{ragd[key]:10.1f}{ref[key]:12.1f}{ragd[key] / ref[key]:8.2f}")
    if args.seqs > 1:
        print(f"{'generated tokens/s (%d seqs)' % args.seqs:28}{ragd['gen_tps_batch']:10.1f}{'-':>12}{'-':>8}")
    print(json.dumps({"ragd": ragd, "llama_cpp": ref, "llama_cpp_python": llama_cpp.__version__}))


if __name__ == "__main__":
    main()
