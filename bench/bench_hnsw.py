#!/usr/bin/env python3
"""HNSW against the exact flat index on a BEIR collection (SciFact by default).

    bench/bench_hnsw.py --dataset ../shared/datasets/scifact [--ef-search 64] [--candidates 50,128,256]

Ingests the corpus (as bench/eval_beir.py writes it) with the embedding
model into a flat collection and into one HNSW collection per --ef-search
value (m and ef_construction: ragd's defaults unless given). Each ingestion
embeds the whole corpus again: ragd keeps vectors per chunk id and each
collection has its own chunks, so one collection cannot reuse another's
vectors (and `--embed-model none` would chunk differently: by the
approximate token counter, not the model's tokenizer). Each collection has
its own data directory and server (all running, queried in turn): in one
store, every dense search of a collection runs index/vindex.c's catch-up
scan over the vectors of the collections written after it, which costs a
flat collection ingested first ~25 ms per query here and would be measured
as the index's cost. Each server builds its index on its first query
(timed apart as "first query").

Then, for every test query, every (collection, --candidates value) in turn
(interleaved, so load from elsewhere on the machine falls on all alike),
dense mode. `candidates` is how many results ragd asks FAISS for (its
default: max(top_k, 50)); FAISS's HNSW search uses efSearch =
max(k, ef_search), so one HNSW collection at candidates 128 searches as
one created with ef_search=128 would (and returns the same top 10), at the
cost of joining 128 hits with the store instead of 50: flat rows at the
same candidates give the like-for-like latency.
- top_k 10: the latency, measured by this client around POST /v1/retrieval
  (query embedding + FAISS search + store join of the candidates + JSON
  over loopback HTTP, parsing included), and the ANN recall: the fraction
  of the exact top 10 (flat, first candidates value; chunks compared by
  file and offset) that the row also returns.
- top_k 100 (candidates max(100, value)): nDCG@10 and recall@100 against
  the qrels, documents scored by their best chunk, as in eval_beir.py.
Beside them, the latency of POST /v1/embeddings for the query alone (the
embedding part of every row).

Standard library only.
"""
import argparse
import contextlib
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_beir import (REPO, load_dataset, ndcg_at, post, ranked_documents, recall_at,  # noqa: E402
                       sample_corpus, serve, write_corpus)


def ingest(ragd, docs, data, collection, *extra):
    t0 = time.monotonic()
    out = subprocess.run([ragd, "ingest", str(docs), "--data", str(data), "--collection", collection, "--quiet",
                          *extra], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"ragd ingest {collection}: {out.stderr.strip()}")
    print(f"{collection}: {out.stdout.strip()} ({time.monotonic() - t0:.1f} s)", flush=True)


def timed_post(url, body):
    t0 = time.perf_counter()
    res = post(url, body)
    return res, (time.perf_counter() - t0) * 1000


def chunk_keys(hits):
    return [(Path(h["document"]).stem, h["offsets"]["start"]) for h in hits]


def p95(xs):
    return sorted(xs)[math.ceil(0.95 * len(xs)) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(REPO.parent / "shared" / "datasets" / "scifact"))
    ap.add_argument("--ragd", default=str(REPO / "build" / "ragd"))
    ap.add_argument("--ef-search", default="64", help="one HNSW collection per value (ragd's default: 64)")
    ap.add_argument("--candidates", default="50,128,256",
                    help="dense candidates asked of FAISS per query (ragd's default: 50); "
                         "HNSW searches with efSearch = max(candidates, ef_search)")
    ap.add_argument("--m", type=int, help="HNSW m (default: ragd's, 32)")
    ap.add_argument("--ef-construction", type=int, help="HNSW ef_construction (default: ragd's, 40)")
    ap.add_argument("--keep", help="keep the data directory here")
    ap.add_argument("--queries", type=int, default=0, help="only the first N test queries (0: all)")
    ap.add_argument("--corpus-sample", type=int, default=0,
                    help="ingest only N documents: those relevant to the queries plus a seeded sample (0: all)")
    args = ap.parse_args()
    corpus, queries, qrels = load_dataset(Path(args.dataset))
    if args.queries:
        qrels = dict(list(qrels.items())[:args.queries])
    if args.corpus_sample:
        corpus = sample_corpus(corpus, qrels, args.corpus_sample)

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ragd-hnsw-"))
    docs = work / "docs"
    write_corpus(corpus, docs)
    spec = {"flat": "flat (exact)"}
    ingest(args.ragd, docs, work / "flat", "flat")
    for ef in (int(x) for x in args.ef_search.split(",")):
        name = f"hnsw_ef{ef}"
        spec[name] = "hnsw" + (f",m={args.m}" if args.m else "") + \
            (f",ef_construction={args.ef_construction}" if args.ef_construction else "") + f",ef_search={ef}"
        ingest(args.ragd, docs, work / name, name, "--index", spec[name])
    # (collection, candidates): every collection at every candidates value.
    configs = [(c, k) for c in spec for k in (int(x) for x in args.candidates.split(","))]
    exact = configs[0]

    with contextlib.ExitStack() as servers:
        base = {c: servers.enter_context(serve(args.ragd, work / c, "--rerank-model", "none", "--gen-model", "none"))
                for c in spec}

        def retrieve(qid, config, top_k):
            c, k = config
            body = {"query": queries[qid], "collection": c, "mode": "dense", "top_k": top_k,
                    "candidates": max(k, top_k)}
            return timed_post(base[c] + "/v1/retrieval", body)

        first_q = next(iter(qrels))
        first = {c: retrieve(first_q, (c, 50), 10)[1] for c in spec}
        ms, ann, nd, r100 = ({x: [] for x in configs} for _ in range(4))
        emb_ms = []
        for i, (qid, rel) in enumerate(qrels.items()):
            emb_ms.append(timed_post(base["flat"] + "/v1/embeddings",
                                     {"input": queries[qid], "input_type": "query"})[1])
            order = configs[i % len(configs):] + configs[:i % len(configs)]
            top10 = {}
            for x in order:
                res, t = retrieve(qid, x, 10)
                ms[x].append(t)
                top10[x] = set(chunk_keys(res["data"]))
            for x in order:
                ranked = ranked_documents(retrieve(qid, x, 100)[0]["data"])
                nd[x].append(ndcg_at(ranked, rel, 10))
                r100[x].append(recall_at(ranked, rel, 100))
            for x in configs:
                ann[x].append(len(top10[exact] & top10[x]) / len(top10[exact]) if top10[exact] else 1.0)

    n = len(qrels)
    print(f"\n{n} queries, dense mode; ms: the client's time around POST /v1/retrieval with top_k 10")
    print(f"{'index':34} {'cand.':>5} {'ANN R@10':>8} {'nDCG@10':>8} {'R@100':>7} {'ms p50':>7} {'ms p95':>7}")
    for x in configs:
        print(f"{spec[x[0]]:34} {x[1]:5} {sum(ann[x]) / n:8.4f} {sum(nd[x]) / n:8.4f} {sum(r100[x]) / n:7.4f} "
              f"{statistics.median(ms[x]):7.2f} {p95(ms[x]):7.2f}")
    print(f"{'query embedding alone (/v1/embeddings)':40} {'':8} {'':8} {'':7} "
          f"{statistics.median(emb_ms):7.2f} {p95(emb_ms):7.2f}")
    print("first query per collection (loads or builds its index), ms: " +
          ", ".join(f"{c} {t:.0f}" for c, t in first.items()))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
