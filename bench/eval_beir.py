#!/usr/bin/env python3
"""Retrieval quality of ragd on a BEIR-format collection.

Writes every corpus document as a text file (title, blank line, text),
ingests them with `ragd ingest` into a fresh data directory, starts
`ragd serve` on it, runs every test query through POST /v1/retrieval and
reports nDCG@10, recall@10 and recall@100 per mode. A document's score is
that of its best chunk.

    bench/eval_beir.py --dataset ../shared/datasets/scifact [--modes lexical]
    bench/eval_beir.py --modes hybrid,hybrid+rerank --rerank-model DIR

Mode "hybrid+rerank" fetches the top --candidates hybrid candidates (100)
and lets the reranker order them ("rerank": true): the one named by
--rerank-model, else the server's default (the causal-LM reranker on the
default generator GGUF). With fewer than 100 candidates, recall@100 is not
comparable between modes (the reranked list has only the candidates).
--queries N evaluates only the first N test queries (in qrels order), for
rerankers too slow to run the whole split on a small machine, and
--corpus-sample N ingests only N documents: every document relevant to the
evaluated queries plus a seeded random sample of the others (an easier
collection than the full corpus; compare modes only within one such run).
--eval-first M then evaluates only the first M of the --queries N (the
sample still holds the documents relevant to all N, so runs with different
M share one ingested sample).

Standard library only, so it runs with any python3.
"""
import argparse
import contextlib
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


def load_dataset(ds):
    """BEIR test split: corpus rows, {query id: text}, {query id: {doc id: grade}}."""
    corpus = load_jsonl(ds / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in load_jsonl(ds / "queries.test.jsonl")}
    return corpus, queries, load_qrels(ds / "qrels.test.tsv")


def sample_corpus(corpus, qrels, n):
    """The documents relevant to QRELS plus a seeded random sample of the others, N in all."""
    import random

    relevant = {d for rel in qrels.values() for d in rel}
    others = sorted(d["_id"] for d in corpus if d["_id"] not in relevant)
    keep = relevant | set(random.Random(0).sample(others, max(0, min(len(others), n - len(relevant)))))
    print(f"corpus sample: {len(keep)} documents ({len(relevant)} relevant to the {len(qrels)} queries)")
    return [d for d in corpus if d["_id"] in keep]


def ndcg_at(ranked, rel, k):
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked, rel, k):
    return len(set(ranked[:k]) & set(rel)) / len(rel) if rel else 0.0


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def write_corpus(corpus, docs):
    """Each document as DOCS/<id>.txt: title, blank line, text."""
    if docs.exists():
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    for d in corpus:
        (docs / f"{d['_id']}.txt").write_text(f"{d.get('title', '')}\n\n{d.get('text', '')}\n", encoding="utf-8")


@contextlib.contextmanager
def serve(ragd, data, *extra):
    """Runs `ragd serve` on DATA on a free port; yields its base URL once ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen([ragd, "serve", "--port", str(port), "--data", str(data), *extra],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/v1/health/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        srv.terminate()
        srv.wait()


def ranked_documents(hits):
    """Document ids in the order of their best chunk."""
    ranked = []
    for hit in hits:
        doc = Path(hit["document"]).stem
        if doc not in ranked:
            ranked.append(doc)
    return ranked


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(REPO.parent / "shared" / "datasets" / "scifact"))
    ap.add_argument("--ragd", default=str(REPO / "build" / "ragd"))
    ap.add_argument("--modes", default="lexical")
    ap.add_argument("--keep", help="keep the data directory here")
    ap.add_argument("--rerank-model", help="reranker for the hybrid+rerank mode (default: the server's)")
    ap.add_argument("--candidates", type=int, default=100, help="hybrid candidates the reranker orders")
    ap.add_argument("--queries", type=int, default=0, help="only the first N test queries (0: all)")
    ap.add_argument("--eval-first", type=int, default=0, help="evaluate only the first M of those queries")
    ap.add_argument("--corpus-sample", type=int, default=0,
                    help="ingest only N documents: the relevant ones plus a seeded random sample (0: all)")
    args = ap.parse_args()
    corpus, queries, qrels = load_dataset(Path(args.dataset))
    if args.queries:
        qrels = dict(list(qrels.items())[:args.queries])
    if args.corpus_sample:
        corpus = sample_corpus(corpus, qrels, args.corpus_sample)
    if args.eval_first:
        qrels = dict(list(qrels.items())[:args.eval_first])

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ragd-eval-"))
    docs = work / "docs"
    write_corpus(corpus, docs)
    data = work / "data"
    t0 = time.monotonic()
    ing = subprocess.run([args.ragd, "ingest", str(docs), "--data", str(data), "--collection", "eval", "--quiet"],
                         capture_output=True, text=True)
    t_ingest = time.monotonic() - t0
    print(ing.stdout.strip(), f"({t_ingest:.1f} s)")

    rerank = ["--rerank-model", args.rerank_model] if args.rerank_model else []
    try:
        with serve(args.ragd, data, *rerank) as base:
            evaluate(base, args, queries, qrels)
    finally:
        if not args.keep:
            shutil.rmtree(work)


def evaluate(base, args, queries, qrels):
    print(f"{'mode':14} {'nDCG@10':>8} {'R@10':>7} {'R@100':>7} {'ms/query':>9}")
    for mode in args.modes.split(","):
        nd, r10, r100 = [], [], []
        t0 = time.monotonic()
        for qid, rel in qrels.items():
            body = {"query": queries[qid], "collection": "eval", "top_k": 100, "mode": mode}
            if mode == "hybrid+rerank":
                body.update(mode="hybrid", rerank=True, candidates=args.candidates, top_k=args.candidates)
            ranked = ranked_documents(post(base + "/v1/retrieval", body)["data"])
            nd.append(ndcg_at(ranked, rel, 10))
            r10.append(recall_at(ranked, rel, 10))
            r100.append(recall_at(ranked, rel, 100))
        ms = (time.monotonic() - t0) * 1000 / len(qrels)
        n = len(qrels)
        print(f"{mode:14} {sum(nd)/n:8.4f} {sum(r10)/n:7.4f} {sum(r100)/n:7.4f} {ms:9.2f}")


if __name__ == "__main__":
    sys.exit(main())
