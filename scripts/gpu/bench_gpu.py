#!/usr/bin/env python3
"""Embedding speed on the GPU: ragd's CUDA encoder (bench_embed_device)
beside sentence-transformers on PyTorch CUDA (fp32 and fp16), same machine,
same run, same model directory, same texts of exactly 128 tokens ([CLS] and
[SEP] included). Prints sentences/s at each batch size, the batch-1 latency,
and ragd / sentence-transformers ratios; writes OUT/bench_gpu.json.

The compute bound, measured in the same run: the FLOPs of one sentence
(per layer 2 T (4 H^2 + 2 H I) for the products with weights and 4 T^2 H
for Q K^T and P V; config.json gives L, H, I) against the TFLOP/s that
PyTorch gets from one 8192^3 fp16 matrix product with fp32 accumulation on
this GPU (the encoder's own arithmetic; the median of 10 after warm-up):
ragd's sentences/s x FLOPs per sentence / that rate.

    python3 scripts/gpu/bench_gpu.py BENCH_BIN MODEL_DIR OUT [--seconds 5]

Runs where PyTorch, sentence-transformers and tokenizers are installed (the
GPU machine's image has them); not part of `make test`."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BATCHES = (1, 32, 128)
TOKENS = 128


def texts_of(model_dir, n=256):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_truncation()
    words = ("retrieval augmented generation keeps documents in sqlite and their vectors in faiss indexes "
             "while a cross encoder reranks candidates before the generator writes an answer with citations "
             "about chunking overlap tokens embeddings cosine similarity batching latency throughput").split()
    out = []
    for i in range(n):
        k, text = 20, ""
        while True:  # grow word by word until exactly TOKENS tokens
            cand = " ".join(words[(i * 7 + j) % len(words)] for j in range(k)) + f" {i}"
            m = len(tok.encode(cand).ids)
            if m > TOKENS:
                break
            text, k = cand, k + 1
            if m == TOKENS:
                break
        if len(tok.encode(text).ids) != TOKENS:
            sys.exit(f"could not build a {TOKENS}-token text")
        out.append(text)
    return out


def run_ragd(binary, model_dir, texts, batch, seconds):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts))
    try:
        r = subprocess.run([binary, model_dir, f.name, str(batch), str(seconds), "cuda"], capture_output=True,
                           text=True, timeout=seconds * 10 + 120)
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        sys.exit(f"bench_embed_device failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_st(model, texts, batch, seconds):
    import torch

    def one(i):
        chunk = [texts[(i * batch + j) % len(texts)] for j in range(batch)]
        t0 = time.perf_counter()
        model.encode(chunk, batch_size=batch, convert_to_numpy=True, normalize_embeddings=True)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    for i in range(3):
        one(i)
    lat, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        lat.append(one(i))
        i += 1
    total = time.perf_counter() - start
    return {"batch": batch, "sentences_per_s": len(lat) * batch / total,
            "latency_ms_mean": 1000 * statistics.mean(lat), "latency_ms_p50": 1000 * statistics.median(lat)}


def flops_per_text(model_dir, tokens):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    L, H, I, T = c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"], tokens
    return L * (2 * T * (4 * H * H + 2 * H * I) + 4 * T * T * H)


def gemm_tflops():
    """fp16 in, fp32 accumulation: what cuBLAS can do for the encoder."""
    import torch

    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return 2 * n ** 3 / statistics.median(times) / 1e12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench_bin")
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    texts = texts_of(a.model_dir)
    res = {"tokens_per_text": TOKENS, "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "sentence_transformers": sentence_transformers.__version__, "ragd": {}, "st_fp32": {}, "st_fp16": {}}
    for b in BATCHES:
        res["ragd"][b] = run_ragd(a.bench_bin, a.model_dir, texts, b, a.seconds)
    # The carried copy mixes f16 and f32 tensors (half_model.py); whatever
    # dtype the loader picks, measure fp32 and then fp16 explicitly.
    st = SentenceTransformer(a.model_dir, device="cuda").float()
    for b in BATCHES:
        res["st_fp32"][b] = run_st(st, texts, b, a.seconds)
    st.half()
    for b in BATCHES:
        res["st_fp16"][b] = run_st(st, texts, b, a.seconds)
    res["flops_per_text"] = flops_per_text(a.model_dir, TOKENS)
    res["gemm_fp16_tflops"] = gemm_tflops()

    print(f"GPU: {res['gpu']}; torch {res['torch']}; sentence-transformers {res['sentence_transformers']}; "
          f"{TOKENS}-token texts")
    print(f"{'batch':>5} {'ragd s/s':>10} {'ST fp32 s/s':>12} {'ST fp16 s/s':>12} {'vs fp32':>8} {'vs fp16':>8}"
          f" {'ragd ms':>8} {'ST32 ms':>8} {'ST16 ms':>8}")
    for b in BATCHES:
        r, f32, f16 = res["ragd"][b], res["st_fp32"][b], res["st_fp16"][b]
        print(f"{b:>5} {r['sentences_per_s']:>10.1f} {f32['sentences_per_s']:>12.1f} {f16['sentences_per_s']:>12.1f}"
              f" {r['sentences_per_s'] / f32['sentences_per_s']:>8.2f} {r['sentences_per_s'] / f16['sentences_per_s']:>8.2f}"
              f" {r['latency_ms_p50']:>8.3f} {f32['latency_ms_p50']:>8.3f} {f16['latency_ms_p50']:>8.3f}")
    peak = res["gemm_fp16_tflops"]
    print(f"compute bound: {res['flops_per_text'] / 1e9:.3f} GFLOP per {TOKENS}-token text; an 8192^3 fp16 "
          f"product (fp32 accumulation) runs at {peak:.0f} TFLOP/s here")
    for b in BATCHES:
        tf = res["ragd"][b]["sentences_per_s"] * res["flops_per_text"] / 1e12
        res["ragd"][b]["tflops"] = tf
        res["ragd"][b]["fraction_of_gemm"] = tf / peak
        print(f"  batch {b:>3}: ragd {tf:.2f} TFLOP/s = {tf / peak:.3f} of it "
              f"(bound {peak * 1e12 / res['flops_per_text']:.0f} sentences/s)")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "bench_gpu.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
