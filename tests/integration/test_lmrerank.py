"""The default reranker over HTTP: `ragd serve` with no --rerank-model runs
the causal-LM (yes/no) reranker on the default generator GGUF,
SmolLM2-135M-Instruct, and answers /v1/ranking, /v1/rerank, LangChain's
NVIDIARerank and /v1/retrieval "rerank" with the scores transformers
computes on the same weights (tests/fixtures/lmrerank_hf_golden.jsonl,
scripts/gen_lmrerank_hf_golden.py) within HF_TOL = 1e-3, in their order.

With --rerank-precision q8 (8-bit activations, llama.cpp's arithmetic) it
gives llama.cpp's scores (tests/fixtures/lmrerank_golden.jsonl,
scripts/gen_lmrerank_golden.py) within TOL = 1e-3, in order wherever
llama.cpp separates two passages by more than ORDER_MARGIN."""

import json
import math
from collections import defaultdict

import pytest

from conftest import REPO, RagdServer, expect_error, expect_json, run_cli

MODEL = REPO / "models" / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct.Q4_1-rerank"
TOL = 1e-3  # q8 against llama.cpp: as SCORE_TOL in tests/unit/test_lmrerank.c
ORDER_MARGIN = 2e-3  # as there
HF_TOL = 1e-3  # f32 (the default) against transformers: as HF_TOL there
LINES = [json.loads(line) for line in (REPO / "tests/fixtures/lmrerank_golden.jsonl").read_text().splitlines()]
HF_LINES = [json.loads(line) for line in (REPO / "tests/fixtures/lmrerank_hf_golden.jsonl").read_text().splitlines()]
GOLDEN = [g for g in LINES if "meta" not in g]
# the same pair on the same line of both fixtures (the unit test checks the ids' hash)
for g, h in zip(GOLDEN, [h for h in HF_LINES if "meta" not in h], strict=True):
    assert g["group"] == h["group"] and len(g["ids"]) == h["n_ids"]
    g["hf_score"] = h["score"]
GROUPS = defaultdict(list)
for g in GOLDEN:
    if g["max_tokens"] == 1024:  # the server's default limit
        GROUPS[g["group"]].append(g)
# Short and varied: the capital of France, passwords, aspirin, the turn-marker
# injection (long prompts are the unit test's: each costs a second or more).
CHECKED = [0, 1, 4, 17]
# A decoder scoring passages in turn on a small shared CPU: generous.
SLOW = 300


def default_server(data_dir, *extra):
    """ragd serve with the default reranker: conftest passes --rerank-model
    none unless told otherwise, so that flag is taken out again."""
    s = RagdServer(data_dir, extra_args=extra, start=False)
    i = s.extra_args.index("--rerank-model")
    del s.extra_args[i:i + 2]
    s.start()
    return s


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    assert MODEL.exists(), "run `make models`"
    s = default_server(tmp_path_factory.mktemp("lmrerank") / "data")
    yield s
    s.stop()


def assert_golden_order(indices, group):
    """transformers' order (the default precision's reference): every two
    passages more than 2 * HF_TOL apart."""
    for a in range(len(indices)):
        for b in range(a + 1, len(indices)):
            la, lb = group[indices[a]]["hf_score"], group[indices[b]]["hf_score"]
            assert la > lb - 2 * HF_TOL, (indices, [g["hf_score"] for g in group])


def assert_llama_order(indices, group):
    """llama.cpp's order, wherever it separates two passages clearly."""
    for a in range(len(indices)):
        for b in range(a + 1, len(indices)):
            la, lb = group[indices[a]]["score"], group[indices[b]]["score"]
            assert la > lb - ORDER_MARGIN, (indices, [g["score"] for g in group])


def test_models_lists_the_default_reranker(lm):
    ours = [m for m in lm.get_json("/v1/models")["data"] if m.get("kind") == "reranker"]
    assert len(ours) == 1
    assert ours[0]["id"] == NAME and ours[0]["method"] == "causal-lm" and ours[0]["max_tokens"] == 1024
    assert ours[0]["precision"] == "f32"
    ranking = lm.get_json("/v1/version")["ranking"]
    assert ranking["precision"] == "f32" and "f32 products" in ranking["device_description"]


@pytest.mark.parametrize("gid", CHECKED)
def test_ranking_gives_transformers_scores_and_order(lm, gid):
    group = GROUPS[gid]
    body = {"model": NAME, "query": {"text": group[0]["query"]}, "passages": [{"text": g["passage"]} for g in group],
            "truncate": "END"}
    got = expect_json(lm.post("/v1/ranking", timeout=SLOW, json=body))["rankings"]
    assert sorted(r["index"] for r in got) == list(range(len(group)))
    logits = [r["logit"] for r in got]
    assert logits == sorted(logits, reverse=True)
    for r in got:
        assert abs(r["logit"] - group[r["index"]]["hf_score"]) < HF_TOL, (r, group[r["index"]]["hf_score"])
    assert_golden_order([r["index"] for r in got], group)


def test_model_names_and_truncation(lm):
    group = GROUPS[0]
    passages = [{"text": g["passage"]} for g in group]
    for name in ("SmolLM2-135M-Instruct.Q4_1", "HuggingFaceTB/" + NAME):
        out = expect_json(lm.post("/v1/ranking", timeout=SLOW, json={"model": name, "query": {"text": group[0]["query"]},
                                                       "passages": passages}))
        assert len(out["rankings"]) == len(group)
        # usage: every prompt's tokens (the shared prefix counted per passage)
        assert out["usage"]["total_tokens"] == sum(len(g["ids"]) for g in group)
    expect_error(lm.post("/v1/ranking", timeout=SLOW, json={"model": "cross-encoder/ms-marco-MiniLM-L-6-v2",
                                             "query": {"text": "q"}, "passages": passages}), 404)
    long = "word " * 3000
    err = expect_error(lm.post("/v1/ranking", timeout=SLOW, json={"query": {"text": "q"},
                                                   "passages": [{"text": "short"}, {"text": long}]}), 400)
    assert "passage 1" in err["message"] and "1024" in err["message"]
    out = expect_json(lm.post("/v1/ranking", timeout=SLOW, json={"query": {"text": "q"}, "passages": [{"text": long}],
                                                   "truncate": "END"}))
    assert out["usage"]["total_tokens"] == 1024


def test_rerank_cohere_shape(lm):
    group = GROUPS[1]
    out = lm.post_json("/v1/rerank", timeout=SLOW, body={"query": group[0]["query"], "documents": [g["passage"] for g in group],
                                      "top_n": 3, "return_documents": True})
    res = out["results"]
    assert len(res) == 3
    assert_golden_order([r["index"] for r in res], group)
    for r in res:
        # relevance_score = P(yes) of a softmax over yes and no
        assert abs(r["relevance_score"] - 1 / (1 + math.exp(-group[r["index"]]["hf_score"]))) < HF_TOL / 4  # sigmoid' <= 1/4
        assert r["document"] == {"text": group[r["index"]]["passage"]}


def test_nvidia_rerank_client(lm):
    from langchain_core.documents import Document
    from langchain_nvidia_ai_endpoints import NVIDIARerank

    group = GROUPS[4]
    ranker = NVIDIARerank(base_url=lm.url + "/v1", model=NAME, top_n=len(group), truncate="END")
    docs = [Document(page_content=g["passage"], metadata={"i": i}) for i, g in enumerate(group)]
    out = ranker.compress_documents(documents=docs, query=group[0]["query"])
    order = [d.metadata["i"] for d in out]
    assert sorted(order) == list(range(len(group)))
    assert_golden_order(order, group)
    for d in out:
        assert abs(d.metadata["relevance_score"] - group[d.metadata["i"]]["hf_score"]) < HF_TOL


def test_retrieval_with_the_default_reranker(lm):
    group = GROUPS[0]
    lm.ingest([(f"doc{i}.txt", "France notes: " + g["passage"]) for i, g in enumerate(group) if g["passage"]],
              collection="lmr")
    query = "France notes: " + group[0]["query"]
    out = lm.post_json("/v1/retrieval", timeout=SLOW, body={"query": query, "collection": "lmr", "top_k": 2, "rerank": True,
                                         "candidates": 10})
    assert out["reranked"] is True and len(out["data"]) == 2
    scores = expect_json(lm.post("/v1/ranking", timeout=SLOW, json={"query": {"text": query}, "passages": [
        {"text": h["text"]} for h in out["data"]]}))["rankings"]
    for h, r in zip(out["data"], sorted(scores, key=lambda r: r["index"])):
        assert abs(h["rerank_logit"] - r["logit"]) < 1e-4
    assert out["data"][0]["rerank_logit"] >= out["data"][1]["rerank_logit"]


def test_rerank_model_none_and_gen(tmp_path):
    s = RagdServer(tmp_path / "none", extra_args=("--rerank-model", "none"))
    try:
        err = expect_error(s.post("/v1/ranking", json={"query": {"text": "q"}, "passages": [{"text": "a"}]}), 503,
                           type_="unavailable")
        assert "--rerank-model" in err["message"]
        assert all(m.get("kind") != "reranker" for m in s.get_json("/v1/models")["data"])
    finally:
        s.stop()
    # "gen": the generator's file, served as both kinds; at q8 precision the
    # reranker computes as llama.cpp does, and gives its scores
    s = RagdServer(tmp_path / "gen", extra_args=("--rerank-model", "gen", "--gen-model", str(MODEL),
                                                 "--rerank-precision", "q8"))
    try:
        kinds = {m["kind"]: m for m in s.get_json("/v1/models")["data"]}
        assert kinds["reranker"]["id"] == NAME and kinds["generator"]["id"] == "SmolLM2-135M-Instruct.Q4_1"
        assert kinds["reranker"]["precision"] == "q8"
        assert "quantized" in s.get_json("/v1/version")["ranking"]["device_description"]
        group = GROUPS[0]
        got = expect_json(s.post("/v1/ranking", timeout=SLOW, json={"query": {"text": group[0]["query"]},
                                                      "passages": [{"text": g["passage"]} for g in group]}))
        for r in got["rankings"]:
            assert abs(r["logit"] - group[r["index"]]["score"]) < TOL, (r, group[r["index"]]["score"])
        assert_llama_order([r["index"] for r in got["rankings"]], group)
    finally:
        s.stop()
    p = run_cli(["serve", "--rerank-precision", "f16", "--embed-model", "none", "--gen-model", "none",
                 "--data", str(tmp_path / "z")])
    assert p.returncode == 2 and "--rerank-precision is f32 or q8" in p.stderr
    p = run_cli(["serve", "--rerank-model", "gen", "--gen-model", "none", "--embed-model", "none",
                 "--data", str(tmp_path / "x")])
    assert p.returncode == 2 and "--rerank-model gen" in p.stderr
    p = run_cli(["serve", "--rerank-model", str(tmp_path / "missing.gguf"), "--embed-model", "none",
                 "--gen-model", "none", "--port", "1", "--data", str(tmp_path / "y")], timeout=30)
    assert p.returncode != 0 and "missing.gguf" in p.stderr
