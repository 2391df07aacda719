"""/v1/embeddings and /v1/models through the official openai client and raw
HTTP, checked against the sentence-transformers golden vectors."""

import base64
import json
import math
import os
import struct
import threading
from pathlib import Path

import pytest
import requests
from openai import OpenAI, BadRequestError, NotFoundError

from conftest import REPO, expect_error, expect_json

MODEL = "all-MiniLM-L6-v2"
MODEL_DIR = Path(os.environ.get("RAGD_MODELS", str(REPO / "models"))) / MODEL
GOLDEN = [json.loads(line) for line in (REPO / "tests/fixtures/embedding_golden.jsonl").read_text().splitlines()]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture(scope="module")
def emb_server(tmp_path_factory):
    from conftest import RagdServer

    assert (MODEL_DIR / "config.json").exists(), f"no model at {MODEL_DIR}: run `make models`"
    s = RagdServer(tmp_path_factory.mktemp("emb") / "data", extra_args=("--embed-model", str(MODEL_DIR)))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(emb_server):
    return OpenAI(base_url=emb_server.url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_the_embedder(client):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    raw = models[0].model_dump()
    assert raw["dimensions"] == 384 and raw["kind"] == "embedding"


@pytest.mark.parametrize("fmt", ["base64", "float"])
def test_openai_client_matches_golden(client, fmt):
    cases = [g for g in GOLDEN if g["text"].strip()][:40]
    kw = {} if fmt == "base64" else {"encoding_format": "float"}  # the client asks for base64 by default
    resp = client.embeddings.create(model=MODEL, input=[g["text"] for g in cases], **kw)
    assert [d.index for d in resp.data] == list(range(len(cases)))
    for g, d in zip(cases, resp.data):
        assert len(d.embedding) == 384
        assert cosine(d.embedding, g["embedding"]) >= 0.9999, g["text"][:60]
    assert resp.usage.prompt_tokens == sum(g["tokens"] for g in cases)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens


def test_raw_base64_is_little_endian_float32(emb_server):
    g = GOLDEN[0]
    body = expect_json(emb_server.post("/v1/embeddings", json={"input": g["text"], "encoding_format": "base64"}), 200)
    vec = struct.unpack("<384f", base64.b64decode(body["data"][0]["embedding"]))
    assert cosine(vec, g["embedding"]) >= 0.9999
    assert body["model"] == MODEL and body["object"] == "list"


def test_nim_fields(emb_server):
    long_text = "retrieval " * 400
    for itype in ("query", "passage"):
        body = expect_json(emb_server.post("/v1/embeddings", json={"input": ["a b"], "input_type": itype}), 200)
        assert len(body["data"]) == 1
    expect_json(emb_server.post("/v1/embeddings", json={"input": ["a"], "model": MODEL + "-query"}), 200)
    err = expect_error(emb_server.post("/v1/embeddings", json={"input": ["ok", long_text], "truncate": "NONE"}), 400)
    assert "exceeds maximum allowed token size 256" in err["message"]
    end = expect_json(emb_server.post("/v1/embeddings", json={"input": [long_text + "tail words"], "truncate": "END"}), 200)
    start = expect_json(emb_server.post("/v1/embeddings", json={"input": [long_text + "tail words"], "truncate": "START"}), 200)
    assert end["usage"]["prompt_tokens"] == 256 == start["usage"]["prompt_tokens"]
    assert cosine(end["data"][0]["embedding"], start["data"][0]["embedding"]) < 0.9999


def test_errors(client, emb_server):
    expect_error(emb_server.post("/v1/embeddings", json={"input": [[101, 2023]]}), 400)
    with pytest.raises(BadRequestError) as exc:
        client.embeddings.create(model=MODEL, input=[[101, 2023]])
    assert "check_embedding_ctx_length=False" in str(exc.value)
    with pytest.raises(NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    for body in ({"input": ""}, {"input": 5}, {"input": "x", "encoding_format": "int8"},
                 {"input": "x", "dimensions": 128}, {"input": "x", "truncate": "MIDDLE"}, {}):
        expect_error(emb_server.post("/v1/embeddings", json=body), 400)


def test_concurrent_requests_each_get_their_own_vectors(emb_server):
    cases = [g for g in GOLDEN if g["text"].strip()][:24]
    results = [None] * len(cases)

    def one(i):
        r = requests.post(emb_server.url + "/v1/embeddings", json={"input": cases[i]["text"]}, timeout=60)
        results[i] = r.json()["data"][0]["embedding"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, v in zip(cases, results):
        assert v is not None and cosine(v, g["embedding"]) >= 0.9999


def test_without_a_model_embeddings_are_404(make_server):
    s = make_server("--embed-model", "none")
    expect_error(s.post("/v1/embeddings", json={"input": "x"}), 404)
    assert expect_json(s.get("/v1/models"), 200)["data"] == []
