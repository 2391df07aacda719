#!/usr/bin/env python3
"""Generator speed on the CPU: ragd's decoder beside llama.cpp
(llama-cpp-python, the reference venv of scripts/gen_llama_golden.py) on the
same machine, in the same run, with the same GGUF and the same token ids.

    python3 bench/bench_decode.py [--bin build/bench_decode] [--threads 2]
                                  [--prompt 512] [--gen 64] [--seqs 16] [GGUF]

Three figures per side, every one with the same thread count on both sides:

prompt tokens/s: the --prompt token ids prefilled in one call into an empty
  cache, best of 3. Timed: ragd's decoder_prefill; llama.cpp's Llama.eval
  (one llama_decode of the whole prompt).
generated tokens/s (1 seq): after that prompt, --gen greedy steps of one
  token each. Timed: per step, the decode call (ragd's decoder_decode with
  one sequence; llama.cpp's Llama.eval of one token) and the argmax over the
  vocabulary that picks the next token.
generated tokens/s (N seqs), N = --seqs: N sequences, each holding the same
  --prompt tokens in its own cache, then --gen steps that each decode one
  token of every sequence in one call, greedy per sequence; tokens/s is
  N x gen / time. Untimed: filling the caches (ragd prefills each sequence
  separately; llama.cpp prefills sequence 0 and copies its cells to the
  others with llama_memory_seq_cp, which leaves the same cache contents).
  Timed: per step, the decode call (ragd's decoder_decode with N caches;
  llama.cpp's llama_decode of a batch of N tokens, seq_id i for token i,
  logits for all N) and the N argmaxes. llama.cpp's context has
  n_seq_max = N with its default non-unified cache (kv_unified false): each
  sequence attends to its own stream only, as each of ragd's sequences
  attends to its own rg_kv_cache.

Prints each side and the ratio ragd / llama.cpp. As a check on the batched
llama.cpp run, it also counts the sequences whose greedy tokens equal the
1-seq run's (all N, unless batching moves a near-tie)."""
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
    toks = [tok]
    t0 = time.perf_counter()
    for _ in range(n_gen):
        llm.eval([tok])
        tok = last()
        toks.append(tok)
    gen = time.perf_counter() - t0
    return {"prompt_tps": len(ids) / best, "gen_tps": n_gen / gen}, toks


def bench_llama_seqs(llm, llama_cpp, ids, n_gen, n_seq, threads, ref_toks):
    """llama.cpp's generated tokens/s summed over n_seq sequences decoded
    together (see the module docstring for what is timed)."""
    import numpy as np

    n_vocab, n = llm.n_vocab(), len(ids)
    p = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
    p.n_seq_max = n_seq
    p.kv_unified = False
    p.n_ctx = n_seq * (n + n_gen + 8)  # split evenly among the sequences' streams
    p.n_batch = p.n_ubatch = max(n, n_seq)
    p.n_threads = p.n_threads_batch = threads
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):  # its context log, as Llama(verbose=False) hides its own
        ctx = llama_cpp.llama_init_from_model(llm.model, p)
    if not ctx:
        sys.exit(f"llama.cpp: cannot make a context for {n_seq} sequences")
    batch = llama_cpp.llama_batch_init(max(n, n_seq), 0, 1)
    try:
        if llama_cpp.llama_n_seq_max(ctx) < n_seq:
            sys.exit(f"llama.cpp: context holds only {llama_cpp.llama_n_seq_max(ctx)} sequences")

        def put(i, tok, pos, seq, want_logits):
            batch.token[i] = tok
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = want_logits

        def decode(n_tokens):
            batch.n_tokens = n_tokens
            rc = llama_cpp.llama_decode(ctx, batch)
            if rc != 0:
                sys.exit(f"llama.cpp: llama_decode returned {rc}")

        for i, t in enumerate(ids):
            put(i, t, i, 0, i == n - 1)
        decode(n)
        first = int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))))
        mem = llama_cpp.llama_get_memory(ctx)
        for s in range(1, n_seq):
            llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
        for s in range(n_seq):
            if llama_cpp.llama_memory_seq_pos_max(mem, s) != n - 1:
                sys.exit(f"llama.cpp: sequence {s} does not hold the prompt after the copy")
        toks = np.full(n_seq, first, dtype=np.int64)
        out = [[first] for _ in range(n_seq)]
        t0 = time.perf_counter()
        for step in range(n_gen):
            for s in range(n_seq):
                put(s, int(toks[s]), n + step, s, True)
            decode(n_seq)
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(n_seq, n_vocab))
            toks = np.argmax(logits, axis=1)
            for s in range(n_seq):
                out[s].append(int(toks[s]))
        gen = time.perf_counter() - t0
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    same = sum(o == ref_toks for o in out)
    return {"gen_tps_batch": n_gen * n_seq / gen, "n_seq": n_seq, "seqs_matching_1seq": same}


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
    ref, ref_toks = bench_llama(llm, llama_cpp, ids, args.gen)
    if args.seqs > 1:
        ref.update(bench_llama_seqs(llm, llama_cpp, ids, args.gen, args.seqs, args.threads, ref_toks))
    print(f"model {Path(model).name}, {args.threads} threads, prompt {args.prompt} tokens, {args.gen} generated")
    print(f"{'':28}{'ragd':>10}{'llama.cpp':>12}{'ratio':>8}")
    for key, label in (("prompt_tps", "prompt tokens/s"), ("gen_tps", "generated tokens/s (1 seq)")):
        print(f"{label:28}{ragd[key]:10.1f}{ref[key]:12.1f}{ragd[key] / ref[key]:8.2f}")
    if args.seqs > 1:
        r, l = ragd["gen_tps_batch"], ref["gen_tps_batch"]
        print(f"{'generated tokens/s (%d seqs)' % args.seqs:28}{r:10.1f}{l:12.1f}{r / l:8.2f}")
        if ref["seqs_matching_1seq"] != args.seqs:
            print(f"note: {ref['seqs_matching_1seq']} of llama.cpp's {args.seqs} batched sequences give the "
                  "1-seq greedy tokens (a near-tie moved by batching?)")
    print(json.dumps({"ragd": ragd, "llama_cpp": ref, "llama_cpp_python": llama_cpp.__version__}))


if __name__ == "__main__":
    main()
