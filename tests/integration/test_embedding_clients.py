"""The framework clients users point at ragd's /v1/embeddings: LangChain's
OpenAIEmbeddings (langchain-openai) and LlamaIndex's OpenAIEmbedding
(llama-index-embeddings-openai), with the settings the README gives for a
non-OpenAI model. Their vectors must be the model's own: equal to the
sentence-transformers golden fixture and to ragd's raw /v1/embeddings, and
they must rank passages the way a reader would."""

import json
import math
import os
from pathlib import Path

import pytest

from conftest import REPO

MODEL = "all-MiniLM-L6-v2"
MODEL_DIR = Path(os.environ.get("RAGD_MODELS", str(REPO / "models"))) / MODEL
GOLDEN = [json.loads(line) for line in (REPO / "tests/fixtures/embedding_golden.jsonl").read_text().splitlines()]
# LlamaIndex replaces newlines with spaces before sending; texts without
# them reach the model byte for byte through both clients.
CASES = [g for g in GOLDEN if g["text"].strip() and "\n" not in g["text"]][:24]

QUERY = "How do I keep my cat healthy?"
PASSAGES = [
    "Quarterly revenue grew by ten percent and operating margins improved.",
    "Feed your kitten a balanced diet and take it to the vet for yearly check-ups.",
    "The train to the airport leaves every fifteen minutes from platform two.",
]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture(scope="module")
def emb_server(tmp_path_factory):
    from conftest import RagdServer

    assert (MODEL_DIR / "config.json").exists(), f"no model at {MODEL_DIR}: run `make models`"
    s = RagdServer(tmp_path_factory.mktemp("clients") / "data", extra_args=("--embed-model", str(MODEL_DIR)))
    yield s
    s.stop()


def raw_embeddings(server, texts):
    body = server.post("/v1/embeddings", json={"model": MODEL, "input": texts, "encoding_format": "float"}).json()
    return [d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])]


@pytest.fixture(scope="module")
def langchain(emb_server):
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length=False: send text, not OpenAI (tiktoken)
    # token ids, which mean nothing to another model's vocabulary.
    return OpenAIEmbeddings(model=MODEL, base_url=emb_server.url + "/v1", api_key="unused",
                            check_embedding_ctx_length=False, max_retries=0, chunk_size=8)


@pytest.fixture(scope="module")
def llamaindex(emb_server):
    from llama_index.embeddings.openai import OpenAIEmbedding

    # model_name overrides the OpenAI model the class validates `model`
    # against; it is what is sent as "model".
    return OpenAIEmbedding(model_name=MODEL, api_base=emb_server.url + "/v1", api_key="unused", max_retries=0,
                           embed_batch_size=8)


@pytest.fixture(params=["langchain", "llamaindex"])
def client(request, langchain, llamaindex):
    """(embed_documents, embed_query) of one framework."""
    if request.param == "langchain":
        return langchain.embed_documents, langchain.embed_query
    return llamaindex.get_text_embedding_batch, llamaindex.get_query_embedding


def test_documents_match_golden_and_raw_endpoint(client, emb_server):
    embed_documents, _ = client
    texts = [g["text"] for g in CASES]
    # 24 texts in batches of 8: the clients split them into several requests.
    vectors = embed_documents(texts)
    assert len(vectors) == len(texts)
    raw = raw_embeddings(emb_server, texts)
    for g, v, r in zip(CASES, vectors, raw):
        assert len(v) == 384
        assert cosine(v, g["embedding"]) >= 0.9999, g["text"][:60]
        assert cosine(v, r) >= 0.9999, g["text"][:60]
        assert abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4  # normalised, as sentence-transformers does


def test_query_matches_golden(client):
    _, embed_query = client
    g = CASES[1]
    v = embed_query(g["text"])
    assert len(v) == 384 and cosine(v, g["embedding"]) >= 0.9999


def test_similarity_ranks_the_relevant_passage_first(client):
    embed_documents, embed_query = client
    q = embed_query(QUERY)
    docs = embed_documents(PASSAGES)
    scores = [cosine(q, d) for d in docs]
    assert max(range(len(scores)), key=scores.__getitem__) == 1, scores
    assert scores[1] > 0.3 and scores[1] - max(scores[0], scores[2]) > 0.2, scores


def test_both_frameworks_agree(langchain, llamaindex):
    a = langchain.embed_documents(PASSAGES)
    b = llamaindex.get_text_embedding_batch(PASSAGES)
    for x, y in zip(a, b):
        assert cosine(x, y) >= 0.9999
    assert cosine(langchain.embed_query(QUERY), llamaindex.get_query_embedding(QUERY)) >= 0.9999


def test_async_clients(langchain, llamaindex):
    import asyncio

    async def both():
        return await langchain.aembed_documents(PASSAGES[:2]), await llamaindex.aget_query_embedding(QUERY)

    docs, q = asyncio.run(both())
    assert len(docs) == 2 and all(len(d) == 384 for d in docs)
    assert cosine(q, docs[1]) > cosine(q, docs[0])
