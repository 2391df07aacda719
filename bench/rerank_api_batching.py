#!/usr/bin/env python3
"""Concurrent small rerank requests through /v1/ranking against a running
`ragd serve` with the causal-LM reranker: C clients at once, each sending R
requests of P passages (its own query), timed end to end; prints pairs/s.
With requests sharing forward passes (lm_reranker_score_groups), C
concurrent requests of a few passages cost about one request's passes.

Usage: bench/rerank_api_batching.py [URL] [--clients 8] [--requests 3]
                                    [--passages 2]
Needs requests (the test venv has it). Compare builds by running it
against each in turn on the same machine."""
import argparse
import threading
import time

import requests

WORDS = ("the lighthouse keeper wrote every storm into a ledger kept dry in a tin box beside the lamp "
         "and each page named the ships that passed the rocks that night").split()


def passage(i, j):
    # about 25 words, different per client and passage
    return " ".join(WORDS[(i * 7 + j * 3 + k) % len(WORDS)] for k in range(25))


def reranker_id(url):
    models = requests.get(url + "/v1/models", timeout=30).json()["data"]
    return next(m["id"] for m in models if m.get("kind") == "reranker")


def client(url, model, i, requests_n, passages_n, out):
    for r in range(requests_n):
        body = {"model": model, "query": {"text": f"What did keeper {i} record on night {r}?"},
                "passages": [{"text": passage(i, j + r)} for j in range(passages_n)]}
        resp = requests.post(url + "/v1/ranking", json=body, timeout=600)
        resp.raise_for_status()
        out.append(len(resp.json()["rankings"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--passages", type=int, default=2)
    a = ap.parse_args()
    model = reranker_id(a.url)
    client(a.url, model, 999, 1, a.passages, [])  # warm-up
    out = []
    threads = [threading.Thread(target=client, args=(a.url, model, i, a.requests, a.passages, out))
               for i in range(a.clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    pairs = sum(out)
    print(f"{a.clients} clients x {a.requests} requests x {a.passages} passages: {pairs} pairs in {dt:.2f} s = "
          f"{pairs / dt:.2f} pairs/s")


if __name__ == "__main__":
    main()
