#!/usr/bin/env python3
"""Writes tests/fixtures/gguf_arch_golden.jsonl: what llama.cpp computes from
the small random-weight GGUF files of tests/fuzz/seeds/gguf (written by
scripts/gen_fuzz_seeds.py): a Llama with byte-level BPE and mixed legacy and
float matrices, a Qwen2 with QKV biases (NEOX rotation from GGUF), a Llama
with SentencePiece and k-quant matrices (Q4_K, Q5_K, Q6_K), two with RoPE
scaling (Llama 3.1's rope_freqs.weight with GQA 4:2; linear), and a Qwen3
(per-head Q/K RMSNorm).
tests/unit/test_decoder_arch.c loads each with ragd's GGUF path and requires
llama.cpp's logits and greedy tokens: the only real GGUF the tests hold is
SmolLM2 (Llama, Q4_1/Q8_0), so without this the Qwen2 and k-quant GGUF paths
would meet llama.cpp nowhere.

Usage: scripts/gen_gguf_arch_golden.py [--out FILE] [GGUF ...]
  Without arguments, the seeds into the fixture. With GGUF files (for
  instance the default model requantized by scripts/requant_gguf.py) and
  --out, a golden file for them, which test_decoder_arch compares instead of
  the fixture when $RAGD_GGUF_GOLDEN names it.
  Runs in the llama-cpp-python virtualenv of scripts/gen_llama_golden.py
  ($RAGD_LLAMAREF_VENV, else build/llamaref-venv; built from the sdist,
  CPU only). Needed only to regenerate the fixture, never by `make test`.

Each line is one prompt of one model:
  model       the GGUF's path in the repository; sha256 of the file;
  ids         the prompt (random ids below the vocabulary size, past the
              control tokens);
  logits_f32  llama.cpp's last-position logits (f16 KV cache, its default),
              little-endian float32 in base64;
  greedy      8 greedy tokens fed back one at a time; step_top2 per step
              [id1, logit1, id2, logit2].
"""
import base64
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_llama_golden as llgold  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "gguf_arch_golden.jsonl"
SEEDS = ("tests/fuzz/seeds/gguf/llama_bpe.gguf", "tests/fuzz/seeds/gguf/qwen2_bpe.gguf",
         "tests/fuzz/seeds/gguf/llama_spm_kquant.gguf", "tests/fuzz/seeds/gguf/llama3_ropefreqs.gguf",
         "tests/fuzz/seeds/gguf/llama_linear_rope.gguf", "tests/fuzz/seeds/gguf/qwen3_bpe.gguf")
PROMPT_LENS = (1, 9, 70)
N_GREEDY = 8
FIRST_ID = 3  # past <unk>/<s>/</s> and their BPE counterparts


def main():
    llgold.ensure_stack(__file__)
    import llama_cpp
    import numpy as np

    args = sys.argv[1:]
    out = OUT
    if args[:1] == ["--out"]:
        out, args = Path(args[1]), args[2:]
    lines = [json.dumps({"meta": {"llama_cpp_python": llama_cpp.__version__, "n_greedy": N_GREEDY}})]
    for rel in args or SEEDS:
        path = REPO / rel
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_batch=256, n_threads=1, logits_all=False,
                              verbose=False)
        n_vocab = llm.n_vocab()

        def logits_now():
            ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32).copy()

        rng = np.random.Generator(np.random.PCG64(11))
        for n in PROMPT_LENS:
            ids = [int(x) for x in rng.integers(FIRST_ID, n_vocab, n)]
            llm.reset()
            llm.eval(ids)
            cur = logits_now()
            rec = {"model": rel, "sha256": sha, "ids": ids,
                   "logits_f32": base64.b64encode(cur.astype("<f4").tobytes()).decode("ascii")}
            greedy, tops = [], []
            for step in range(N_GREEDY):
                t2, v2 = llgold.top(cur, 2)
                tops.append([t2[0], float(cur[t2[0]]), t2[1], float(cur[t2[1]])])
                greedy.append(t2[0])
                if step + 1 < N_GREEDY:
                    llm.eval([t2[0]])
                    cur = logits_now()
            rec["greedy"] = greedy
            rec["step_top2"] = tops
            lines.append(json.dumps(rec))
            print(f"{rel}: {n} tokens -> {greedy}", file=sys.stderr)
        del llm
    out.write_text("\n".join(lines) + "\n", encoding="ascii")
    print(f"wrote {out} ({len(lines) - 1} prompts)", file=sys.stderr)


if __name__ == "__main__":
    main()
