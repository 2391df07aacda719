"""The reranker over HTTP: NIM /v1/ranking (curl-style requests and
LangChain's NVIDIARerank), the Cohere/Jina/TEI-style /v1/rerank, errors, and
/v1/retrieval with "rerank": true.

The server runs the TEST cross-encoder of scripts/gen_rerank_golden.py (the
real all-MiniLM-L6-v2 encoder under a seeded random head, assembled by
scripts/rerank_test_model.py): its scores mean nothing, but they must be
the reference's (tests/fixtures/rerank_golden.jsonl, sentence-transformers'
CrossEncoder), so every order asserted here is the reference's order."""

import json
import math
import os
import sys
from collections import defaultdict

import pytest

from conftest import REPO, RagdServer, expect_error, expect_json

sys.path.insert(0, str(REPO / "scripts"))
import rerank_test_model  # noqa: E402

TOL = 1e-3
GOLDEN = [json.loads(line) for line in (REPO / "tests/fixtures/rerank_golden.jsonl").read_text().splitlines()]
GROUPS = defaultdict(list)
for g in GOLDEN:
    GROUPS[g["group"]].append(g)
NAME = rerank_test_model.NAME


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    assert (rerank_test_model.default_minilm() / "model.safetensors").exists(), "run `make models`"
    return rerank_test_model.assemble(tmp_path_factory.mktemp("rerank-model"))


@pytest.fixture(scope="module")
def rr(tmp_path_factory, model_dir):
    s = RagdServer(tmp_path_factory.mktemp("rerank") / "data", extra_args=("--rerank-model", str(model_dir)))
    yield s
    s.stop()


def reference_order(group):
    return [i for i, _ in sorted(enumerate(group), key=lambda x: -x[1]["logit"])]


def assert_reference_order(indices, group):
    """indices (best first) agree with the golden logits wherever those
    differ by more than twice the tolerance."""
    for a in range(len(indices)):
        for b in range(a + 1, len(indices)):
            la, lb = group[indices[a]]["logit"], group[indices[b]]["logit"]
            assert la > lb - 2 * TOL, (indices, [g["logit"] for g in group])


def ranking(server, group, status=200, **extra):
    body = {"model": NAME, "query": {"text": group[0]["query"]}, "passages": [{"text": g["passage"]} for g in group]}
    body.update(extra)
    return expect_json(server.post("/v1/ranking", json=body), status)


def test_models_lists_the_reranker(rr):
    models = rr.get_json("/v1/models")["data"]
    ours = [m for m in models if m["id"] == NAME]
    assert len(ours) == 1 and ours[0]["kind"] == "reranker" and ours[0]["max_tokens"] == 512


@pytest.mark.parametrize("gid", sorted(GROUPS))
def test_ranking_gives_reference_logits_and_order(rr, gid):
    group = GROUPS[gid]
    out = ranking(rr, group, truncate="END")
    got = out["rankings"]
    assert sorted(r["index"] for r in got) == list(range(len(group)))
    logits = [r["logit"] for r in got]
    assert logits == sorted(logits, reverse=True)
    for r in got:
        assert abs(r["logit"] - group[r["index"]]["logit"]) < TOL, (r, group[r["index"]]["logit"])
    assert_reference_order([r["index"] for r in got], group)
    assert out["usage"]["total_tokens"] == sum(g["tokens"] for g in group)


def test_ranking_top_n_and_plain_query_string(rr):
    group = GROUPS[0]
    out = ranking(rr, group, top_n=2)
    assert [r["index"] for r in out["rankings"]] == reference_order(group)[:2]
    body = {"query": group[0]["query"], "passages": [{"text": g["passage"]} for g in group]}  # no model: fine
    assert expect_json(rr.post("/v1/ranking", json=body))["rankings"][0]["index"] == reference_order(group)[0]


def test_truncate_none_refuses_an_over_long_pair(rr):
    long = next(g for g in GOLDEN if g["truncated"])
    group = [g for g in GROUPS[long["group"]]]
    for extra in ({"truncate": "NONE"}, {}):  # NONE is the default, as in NIMs
        resp = rr.post("/v1/ranking", json={"query": {"text": long["query"]},
                                             "passages": [{"text": g["passage"]} for g in group], **extra})
        err = expect_error(resp, 400)
        assert "512" in err["message"], err
        assert f"passage {group.index(long)}" in err["message"], err


def test_passage_limit(rr, tmp_path):
    q = {"text": "anything"}
    err = expect_error(rr.post("/v1/ranking", json={"query": q, "passages": [{"text": "x"}] * 401}), 400)
    assert "401" in err["message"] and "400" in err["message"]
    assert len(ranking(rr, [{"query": "anything", "passage": "x"}] * 400)["rankings"]) == 400
    small = RagdServer(tmp_path / "data", extra_args=("--rerank-model", str(rr.extra_args[1]),
                                                       "--rerank-max-passages", "3"))
    try:
        expect_error(small.post("/v1/ranking", json={"query": q, "passages": [{"text": "x"}] * 4}), 400)
        assert len(expect_json(small.post("/v1/ranking", json={"query": q, "passages": [{"text": "x"}] * 3}))
                   ["rankings"]) == 3
        expect_error(small.post("/v1/rerank", json={"query": "a", "documents": ["x"] * 4}), 400)
    finally:
        small.stop()


@pytest.mark.parametrize("body, status", [
    ({"passages": [{"text": "a"}]}, 400),
    ({"query": {"text": ""}, "passages": [{"text": "a"}]}, 400),
    ({"query": {"text": "q"}}, 400),
    ({"query": {"text": "q"}, "passages": []}, 400),
    ({"query": {"text": "q"}, "passages": ["a plain string"]}, 400),
    ({"query": {"text": "q"}, "passages": [{"text": 3}]}, 400),
    ({"query": {"text": "q"}, "passages": [{"text": "a"}], "truncate": "START"}, 400),
    ({"query": {"text": "q"}, "passages": [{"text": "a"}], "top_n": 0}, 400),
    ({"query": {"text": "q"}, "passages": [{"text": "a"}], "model": "nvidia/some-other-model"}, 404),
])
def test_ranking_errors(rr, body, status):
    expect_error(rr.post("/v1/ranking", json=body), status)


def test_nvidia_rerank_client(rr):
    from langchain_core.documents import Document
    from langchain_nvidia_ai_endpoints import NVIDIARerank

    group = GROUPS[4]
    ranker = NVIDIARerank(base_url=rr.url + "/v1", model=NAME, top_n=len(group), truncate="END")
    docs = [Document(page_content=g["passage"], metadata={"i": i}) for i, g in enumerate(group)]
    out = ranker.compress_documents(documents=docs, query=group[0]["query"])
    order = [d.metadata["i"] for d in out]
    assert sorted(order) == list(range(len(group)))
    assert_reference_order(order, group)
    for d in out:
        assert abs(d.metadata["relevance_score"] - group[d.metadata["i"]]["logit"]) < TOL
    top2 = NVIDIARerank(base_url=rr.url + "/v1", model=NAME, top_n=2).compress_documents(documents=docs,
                                                                                       query=group[0]["query"])
    assert [d.metadata["i"] for d in top2] == order[:2]


def test_rerank_cohere_shape(rr):
    group = GROUPS[2]
    docs = [g["passage"] for g in group]
    docs[1] = {"text": docs[1]}  # strings and {"text"} objects may mix
    out = rr.post_json("/v1/rerank", {"query": group[0]["query"], "documents": docs, "top_n": 3,
                                      "return_documents": True})
    res = out["results"]
    assert [r["index"] for r in res] == reference_order(group)[:3]
    for r in res:
        want = 1 / (1 + math.exp(-group[r["index"]]["logit"]))
        assert abs(r["relevance_score"] - want) < TOL / 4
        assert r["document"] == {"text": group[r["index"]]["passage"]}
    plain = rr.post_json("/v1/rerank", {"query": group[0]["query"], "documents": [g["passage"] for g in group]})
    assert len(plain["results"]) == len(group) and all("document" not in r for r in plain["results"])
    # Over-long documents are cut here (these APIs do not refuse them).
    long = next(g for g in GOLDEN if g["truncated"])
    out = rr.post_json("/v1/rerank", {"query": long["query"], "documents": [long["passage"]]})
    assert abs(out["results"][0]["relevance_score"] - 1 / (1 + math.exp(-long["logit"]))) < TOL / 4
    expect_error(rr.post("/v1/rerank", json={"query": "q", "documents": [1]}), 400)
    expect_error(rr.post("/v1/rerank", json={"query": "q", "documents": ["a"], "return_documents": "yes"}), 400)


def test_without_a_reranker_everything_answers_503(tmp_path):
    s = RagdServer(tmp_path / "data", extra_args=("--rerank-model", "none"))
    try:
        for path, body in (("/v1/ranking", {"query": {"text": "q"}, "passages": [{"text": "a"}]}),
                           ("/v1/rerank", {"query": "q", "documents": ["a"]}),
                           ("/v1/retrieval", {"query": "q", "rerank": True})):
            err = expect_error(s.post(path, json=body), 503, type_="unavailable")  # not "overloaded": retrying will not help
            assert "--rerank-model" in err["message"]
        assert all(m.get("kind") != "reranker" for m in s.get_json("/v1/models")["data"])
    finally:
        s.stop()


def test_retrieval_with_rerank(rr):
    # Ten documents that all match the query lexically, so retrieval fetches them all.
    topic = "ocelot"
    texts = [f"The {topic} report number {i}: " + g["passage"][:300] for i, g in enumerate(GOLDEN[:40:4])]
    rr.ingest([(f"doc{i}.txt", t) for i, t in enumerate(texts)], collection="rr")
    query = f"{topic} report about vitamin deficiency"
    plain = rr.post_json("/v1/retrieval", {"query": query, "collection": "rr", "top_k": 10})["data"]
    assert len(plain) == 10
    out = rr.post_json("/v1/retrieval", {"query": query, "collection": "rr", "top_k": 3, "rerank": True,
                                         "candidates": 10})
    hits = out["data"]
    assert out["reranked"] is True and len(hits) == 3
    # The reranker's own scores of all ten candidates decide the three kept.
    scores = ranking(rr, [{"query": query, "passage": h["text"]} for h in plain], truncate="END")["rankings"]
    best = [plain[r["index"]]["chunk_id"] for r in scores[:3]]
    assert [h["chunk_id"] for h in hits] == best
    assert best != [p["chunk_id"] for p in plain[:3]]  # the reranker changed the order here
    for h, r in zip(hits, scores[:3]):
        assert abs(h["rerank_logit"] - r["logit"]) < 1e-4
        # The retrieval score and place are kept beside the logit.
        i = [p["chunk_id"] for p in plain].index(h["chunk_id"])
        assert h["score"] == pytest.approx(plain[i]["score"]) and h["ranks"]["retrieval"] == i + 1
    expect_error(rr.post("/v1/retrieval", json={"query": query, "rerank": "yes"}), 400)


# ---- the RAG Blueprint's POST /v1/search (LangChain's NVIDIARAGRetriever) ----

BP_TOPIC = "pangolin"
BP_TEXTS = [f"The {BP_TOPIC} note number {i}: " + g["passage"][:300] for i, g in enumerate(GOLDEN[1:41:4])]
BP_QUERY = f"{BP_TOPIC} note about vitamin deficiency"


@pytest.fixture(scope="module")
def bp(rr):
    rr.ingest([(f"bp{i}.txt", t) for i, t in enumerate(BP_TEXTS)], collection="bp")
    # another collection, with document metadata (one key named like a chunk field)
    rr.ingest([("other.txt", f"A {BP_TOPIC} note about vitamin deficiency, kept elsewhere.")], collection="bp2",
              metadata={"owner": "lab", "chunk_id": "theirs"})
    return rr


def test_blueprint_search_through_nvidia_rag_retriever(bp):
    from langchain_nvidia_ai_endpoints import NVIDIARAGRetriever

    # The client's defaults: the reranker on, 100 candidates; here 3 results.
    docs = NVIDIARAGRetriever(base_url=bp.url, collection_names=["bp"], k=3).invoke(BP_QUERY)
    want = bp.post_json("/v1/retrieval", {"query": BP_QUERY, "collection": "bp", "top_k": 3, "rerank": True,
                                          "candidates": 100})["data"]
    plain = bp.post_json("/v1/retrieval", {"query": BP_QUERY, "collection": "bp", "top_k": 3,
                                           "candidates": 100})["data"]
    assert len(docs) == 3 and len(want) == 3
    assert [d.page_content for d in docs] == [h["text"] for h in want]
    assert [d.page_content for d in docs] != [h["text"] for h in plain]  # the reranker's order, not retrieval's
    for d, h in zip(docs, want):
        m = d.metadata
        assert m["score"] == pytest.approx(1 / (1 + math.exp(-h["rerank_logit"])), abs=1e-6)
        assert m["document_id"] == str(h["document_id"]) and m["document_name"] == h["document"]
        assert m["document_type"] == "text" and m["chunk_id"] == h["chunk_id"] and m["collection"] == "bp"
    assert [d.metadata["score"] for d in docs] == sorted((d.metadata["score"] for d in docs), reverse=True)

    # Reranker off: retrieval's order and scores.
    docs = NVIDIARAGRetriever(base_url=bp.url, collection_names=["bp"], k=3, enable_reranker=False).invoke(BP_QUERY)
    assert [d.page_content for d in docs] == [h["text"] for h in plain]
    assert [d.metadata["score"] for d in docs] == pytest.approx([h["score"] for h in plain])


def test_blueprint_search_fields_and_errors(bp):
    body = {"query": BP_QUERY, "collection_names": ["bp"], "reranker_top_k": 10, "vdb_top_k": 10}
    out = bp.post_json("/v1/search", body)
    assert out["total_results"] == len(out["results"]) == 10
    scores = [r["score"] for r in out["results"]]
    # confidence_threshold keeps the results whose reranker probability reaches it
    cut = (scores[3] + scores[4]) / 2
    kept = bp.post_json("/v1/search", dict(body, confidence_threshold=cut))
    assert [r["content"] for r in kept["results"]] == [r["content"] for r in out["results"][:4]]
    assert kept["total_results"] == 4
    assert all(r["metadata"]["collection"] == "bp" for r in out["results"])
    # an empty list searches every collection: the other collection's note is found, with its
    # document's metadata (the chunk's own chunk_id winning over the document's key)
    every = bp.post_json("/v1/search", dict(body, collection_names=[], reranker_top_k=20, vdb_top_k=20))["results"]
    other = [r for r in every if r["metadata"]["collection"] == "bp2"]
    assert len(other) == 1 and other[0]["document_name"] == "other.txt"
    assert other[0]["metadata"]["owner"] == "lab" and isinstance(other[0]["metadata"]["chunk_id"], int)
    # reranker_top_k 0 asks for nothing, but the request is checked all the same
    assert bp.post_json("/v1/search", dict(body, reranker_top_k=0)) == {"results": [], "total_results": 0}
    expect_error(bp.post("/v1/search", json=dict(body, reranker_top_k=0, collection_names=["no-such"])), 404)
    expect_error(bp.post("/v1/search", json=dict(body, reranker_top_k=0, query="x" * 20000)), 400)
    # a threshold on scores that are not the reranker's is refused
    err = expect_error(bp.post("/v1/search", json=dict(body, enable_reranker=False, confidence_threshold=0.5)), 400)
    assert "enable_reranker is false" in err["message"]
    # accepted and ignored: the Blueprint's model and endpoint overrides, messages, citations
    same = bp.post_json("/v1/search", dict(body, messages=[{"role": "user", "content": "x"}], enable_citations=True,
                                           reranker_model="m", embedding_endpoint="http://elsewhere"))
    assert same == out
    # what ragd cannot do is refused, not pretended
    for extra in ({"enable_query_rewriting": True}, {"enable_filter_generator": True},
                  {"filter_expr": 'content like "%x%"'}, {"collection_names": ["bp", "rr"]},
                  {"collection_names": "bp"}, {"reranker_top_k": -1}, {"vdb_top_k": 5000},
                  {"confidence_threshold": 2}, {"enable_reranker": "yes"}, {"query": ""}, {"query": 7}):
        expect_error(bp.post("/v1/search", json=dict(body, **extra)), 400)
    expect_error(bp.post("/v1/search", json=dict(body, collection_names=["no-such"])), 404)


def test_blueprint_search_without_a_reranker_keeps_retrieval_order(tmp_path):
    from langchain_nvidia_ai_endpoints import NVIDIARAGRetriever

    s = RagdServer(tmp_path / "data", extra_args=("--rerank-model", "none"))
    try:
        s.ingest([(f"bp{i}.txt", t) for i, t in enumerate(BP_TEXTS)], collection="bp")
        # enable_reranker is the client's default; with no reranker the retrieval order is the answer
        docs = NVIDIARAGRetriever(base_url=s.url, collection_names=["bp"], k=4).invoke(BP_QUERY)
        plain = s.post_json("/v1/retrieval", {"query": BP_QUERY, "collection": "bp", "top_k": 4,
                                              "candidates": 100})["data"]
        assert [d.page_content for d in docs] == [h["text"] for h in plain] and len(docs) == 4
        err = expect_error(s.post("/v1/search", json={"query": BP_QUERY, "confidence_threshold": 0.5}), 400)
        assert "no reranker" in err["message"]
    finally:
        s.stop()
