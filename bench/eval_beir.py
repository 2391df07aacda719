#!/usr/bin/env python3
"""Retrieval quality of ragd on a BEIR-format collection.

Writes every corpus document as a text file (title, blank line, text),
ingests them with `ragd ingest` into a fresh data directory, starts
`ragd serve` on it, runs every test query through POST /v1/retrieval and
reports nDCG@10, recall@10 and recall@100 per mode. A document's score is
that of its best chunk.

    bench/eval_beir.py --dataset ../shared/datasets/scifact [--modes lexical]
    bench/eval_beir.py --modes hybrid,hybrid+rerank --rerank-model DIR

Mode "hybrid+rerank" fetches the top 100 hybrid candidates and lets the
reranker named by --rerank-model (any cross-encoder ragd loads) order them
("rerank": true, "candidates": 100).

Standard library only, so it runs with any python3.
"""
import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            if int(s) > 0:
                qrels.setdefault(q, {})[d] = int(s)
    return qrels


def ndcg_at(ranked, rel, k):
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked, rel, k):
    return len(set(ranked[:k]) & set(rel)) / len(rel) if rel else 0.0


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(REPO.parent / "shared" / "datasets" / "scifact"))
    ap.add_argument("--ragd", default=str(REPO / "build" / "ragd"))
    ap.add_argument("--modes", default="lexical")
    ap.add_argument("--keep", help="keep the data directory here")
    ap.add_argument("--rerank-model", help="cross-encoder directory for the hybrid+rerank mode")
    args = ap.parse_args()
    if "hybrid+rerank" in args.modes.split(",") and not args.rerank_model:
        ap.error("mode hybrid+rerank needs --rerank-model DIR")
    ds = Path(args.dataset)
    corpus = load_jsonl(ds / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in load_jsonl(ds / "queries.test.jsonl")}
    qrels = load_qrels(ds / "qrels.test.tsv")

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ragd-eval-"))
    docs = work / "docs"
    if docs.exists():
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    for d in corpus:
        (docs / f"{d['_id']}.txt").write_text(f"{d.get('title', '')}\n\n{d.get('text', '')}\n", encoding="utf-8")
    data = work / "data"
    t0 = time.monotonic()
    ing = subprocess.run([args.ragd, "ingest", str(docs), "--data", str(data), "--collection", "eval", "--quiet"],
                         capture_output=True, text=True)
    t_ingest = time.monotonic() - t0
    print(ing.stdout.strip(), f"({t_ingest:.1f} s)")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rerank = ["--rerank-model", args.rerank_model] if args.rerank_model else []
    srv = subprocess.Popen([args.ragd, "serve", "--port", str(port), "--data", str(data), *rerank],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/v1/health/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        print(f"{'mode':14} {'nDCG@10':>8} {'R@10':>7} {'R@100':>7} {'ms/query':>9}")
        for mode in args.modes.split(","):
            nd, r10, r100 = [], [], []
            t0 = time.monotonic()
            for qid, rel in qrels.items():
                body = {"query": queries[qid], "collection": "eval", "top_k": 100, "mode": mode}
                if mode == "hybrid+rerank":
                    body.update(mode="hybrid", rerank=True, candidates=100)
                res = post(base + "/v1/retrieval", body)
                ranked = []
                for hit in res["data"]:
                    doc = Path(hit["document"]).stem
                    if doc not in ranked:
                        ranked.append(doc)
                nd.append(ndcg_at(ranked, rel, 10))
                r10.append(recall_at(ranked, rel, 10))
                r100.append(recall_at(ranked, rel, 100))
            ms = (time.monotonic() - t0) * 1000 / len(qrels)
            n = len(qrels)
            print(f"{mode:14} {sum(nd)/n:8.4f} {sum(r10)/n:7.4f} {sum(r100)/n:7.4f} {ms:9.2f}")
    finally:
        srv.terminate()
        srv.wait()
        if not args.keep:
            shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
