"""`ragd serve --rerank-model FILE.gguf` with a BERT cross-encoder GGUF: the
TEST cross-encoder (scripts/rerank_test_model.py: the real all-MiniLM-L6-v2
encoder under a seeded head; its scores mean nothing) converted by
scripts/make_bert_gguf.py (llama.cpp's converter layout plus the pooler as
cls.*, bert.pooling_type 4) at F32 and F16 must give sentence-transformers'
logits (tests/fixtures/rerank_golden.jsonl, all 120 pairs, the same order)
through /v1/ranking, and /v1/models must list it as a cross-encoder. A BERT
GGUF without a classifier (an embedding model) is refused at start-up with
the reason."""

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from conftest import REPO, RagdServer, ServerStartError, expect_json

sys.path.insert(0, str(REPO / "scripts"))
import rerank_test_model  # noqa: E402

GOLDEN = [json.loads(line) for line in (REPO / "tests/fixtures/rerank_golden.jsonl").read_text().splitlines()]
GROUPS = defaultdict(list)
for g in GOLDEN:
    GROUPS[g["group"]].append(g)
NAME = rerank_test_model.NAME
# |logit - golden| bounds (golden logits lie in [-2.3, 2.8]). F32 is the
# directory model's arithmetic: the 1e-3 (measured 4.1e-6, as the
# directory path). F16 rounds the encoder's matrices to 11 significant bits
# (relative error up to 4.9e-4 per weight; the head is F16 in the fixture
# already, so exact): measured worst over the 120 pairs 1.7e-3. 5e-3 keeps
# a 3x margin and still fails a real error (a head bias off by 0.01 fails
# both kinds; a wrong tensor, type id or pooler gives 0.1 and more).
TOL = {"f32": 1e-3, "f16": 5e-3}


def write_gguf(tmp, outtype):
    model_dir = rerank_test_model.assemble(tmp)
    path = tmp / f"{NAME}.gguf"
    subprocess.run([sys.executable, str(REPO / "scripts/make_bert_gguf.py"), str(model_dir), str(path),
                    "--outtype", outtype], check=True, timeout=300)
    return path


@pytest.fixture(scope="module", params=["f32", "f16"])
def gguf_rr(request, tmp_path_factory):
    assert (rerank_test_model.default_minilm() / "model.safetensors").exists(), "run `make models`"
    tmp = tmp_path_factory.mktemp("rerank-gguf-" + request.param)
    path = write_gguf(tmp, request.param)
    s = RagdServer(tmp / "data", extra_args=("--rerank-model", str(path)))
    yield request.param, s
    s.stop()


def test_models_lists_a_cross_encoder(gguf_rr):
    _, s = gguf_rr
    ours = [m for m in expect_json(s.get("/v1/models"))["data"] if m["id"] == NAME]
    assert len(ours) == 1, expect_json(s.get("/v1/models"))
    assert ours[0]["kind"] == "reranker" and ours[0]["method"] == "cross-encoder"
    assert ours[0]["max_tokens"] == 512  # bert.context_length


def test_ranking_gives_the_golden_logits(gguf_rr):
    kind, s = gguf_rr
    worst, n = 0.0, 0
    for gid, group in sorted(GROUPS.items()):
        body = {"model": NAME, "query": {"text": group[0]["query"]},
                "passages": [{"text": g["passage"]} for g in group], "truncate": "END"}
        out = expect_json(s.post("/v1/ranking", json=body))
        got = {r["index"]: r["logit"] for r in out["rankings"]}
        assert sorted(got) == list(range(len(group)))
        for i, g in enumerate(group):
            worst = max(worst, abs(got[i] - g["logit"]))
            n += 1
        # the reference order wherever the golden logits are apart
        order = [r["index"] for r in out["rankings"]]
        for a in range(len(order)):
            for b in range(a + 1, len(order)):
                assert group[order[a]]["logit"] > group[order[b]]["logit"] - 2 * TOL[kind], (gid, order)
        assert out["usage"]["total_tokens"] == sum(g["tokens"] for g in group)
    print(f"{kind}: {n} pairs, max |logit - golden| {worst:.2e}")
    assert n == len(GOLDEN) == 120
    assert worst < TOL[kind]


def test_an_embedding_gguf_is_refused(tmp_path):
    minilm = rerank_test_model.default_minilm()
    path = tmp_path / "minilm.gguf"
    subprocess.run([sys.executable, str(REPO / "scripts/make_bert_gguf.py"), str(minilm), str(path)],
                   check=True, timeout=300)
    s = RagdServer(tmp_path / "data", extra_args=("--rerank-model", str(path)), start=False)
    with pytest.raises(ServerStartError):
        s.start()
    log = s.log_tail()
    assert "no classifier (tensor cls.output.weight)" in log and str(path) in log, log
