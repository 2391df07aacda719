"""Dense and hybrid retrieval with the embedding model: meaning beats shared
words, deletions and restarts keep the vector index in step with the store,
a damaged index file is rebuilt."""

import os
from pathlib import Path

import pytest

from conftest import REPO, expect_error, run_cli

MODEL_DIR = Path(os.environ.get("RAGD_MODELS", str(REPO / "models"))) / "all-MiniLM-L6-v2"

DOCS = [
    ("pets.txt", b"The feline curled up on the rug and purred while the kitten chased a ball of yarn."),
    ("finance.txt", b"Quarterly revenue grew by ten percent and operating margins improved across regions."),
    ("weather.txt", b"Heavy rain and strong winds are expected along the coast tomorrow afternoon."),
]


@pytest.fixture
def dense_server(make_server):
    assert (MODEL_DIR / "config.json").exists(), f"no model at {MODEL_DIR}: run `make models`"
    s = make_server("--embed-model", str(MODEL_DIR))
    s.ingest(DOCS)
    return s


def names(body):
    return [h["document"] for h in body["data"]]


def test_dense_finds_meaning_without_shared_words(dense_server):
    s = dense_server
    assert s.retrieve("cat", mode="lexical")["data"] == []
    dense = s.retrieve("cat", mode="dense", top_k=3)
    assert dense["mode"] == "dense" and names(dense)[0] == "pets.txt"
    scores = [h["score"] for h in dense["data"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0001
    assert dense["data"][0]["ranks"] == {"lexical": None, "dense": 1}
    assert names(s.retrieve("stock market earnings", mode="dense"))[0] == "finance.txt"


def test_hybrid_is_the_default_and_fuses_ranks(dense_server):
    body = dense_server.retrieve("storm forecast rain", top_k=3)
    assert body["mode"] == "hybrid"
    top = body["data"][0]
    assert top["document"] == "weather.txt"
    assert top["ranks"]["lexical"] == 1 and top["ranks"]["dense"] == 1
    assert abs(top["score"] - 2 / 61) < 1e-9


def test_delete_and_restart_keep_the_index_in_step(dense_server):
    s = dense_server
    pets = next(d for d in s.documents() if d["name"] == "pets.txt")
    assert s.delete(f"/v1/documents/{pets['id']}").status_code == 200
    assert "pets.txt" not in names(s.retrieve("cat", mode="dense", top_k=3))
    s.stop()
    index = next((s.data_dir / "indexes").glob("collection-*.faiss"))
    s.restart()
    assert names(s.retrieve("stock market earnings", mode="dense"))[0] == "finance.txt"
    assert "pets.txt" not in names(s.retrieve("cat", mode="dense", top_k=3))
    # A damaged cache is rebuilt from the store.
    s.stop()
    index.write_bytes(b"garbage")
    s.restart()
    assert names(s.retrieve("storm at sea", mode="dense"))[0] == "weather.txt"


def test_cli_ingested_vectors_are_searchable_by_the_server(make_server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, data in DOCS:
        (docs / name).write_bytes(data)
    data_dir = tmp_path / "data"
    run_cli(["ingest", docs, "--embed-model", MODEL_DIR], data_dir=data_dir, check=0)
    s = make_server("--embed-model", str(MODEL_DIR), data_dir=data_dir)
    assert names(s.retrieve("kitty", mode="dense"))[0] == "pets.txt"
    # ...and so are vectors another process adds while the server runs.
    (docs / "space.txt").write_bytes(b"The rocket reached orbit and deployed its satellite payload.")
    run_cli(["ingest", docs / "space.txt", "--embed-model", MODEL_DIR], data_dir=data_dir, check=0)
    assert names(s.retrieve("spacecraft launch", mode="dense"))[0] == "space.txt"
    # ragd search has the same modes.
    out = run_cli(["search", "kitty", "--mode", "dense", "-k", "1", "--embed-model", MODEL_DIR], data_dir=data_dir,
                  check=0).stdout
    assert out.startswith("1. pets.txt"), out
    out = run_cli(["search", "kitty", "--mode", "lexical"], data_dir=data_dir, check=0).stdout
    assert "no matches" in out


def test_dense_without_a_model_is_400(server):
    server.ingest(DOCS[:1])
    for mode in ("dense", "hybrid"):
        err = expect_error(server.post("/v1/retrieval", json={"query": "cat", "mode": mode}), 400)
        assert "embedding model" in err["message"]
    assert server.retrieve("feline")["mode"] == "lexical"


def test_chunks_are_sized_in_model_tokens(dense_server):
    s = dense_server
    words = " ".join(f"Paragraph {i} explains tokenisation, e.g. WordPiece splits 'unaffable' into pieces."
                     for i in range(120))
    (task,) = s.upload_ok([("long.txt", words.encode())])
    task = s.wait_task(task["id"])
    assert task["state"] == "done", task
    chunks = s.document(task["document_id"], chunks=True)["chunk_list"]
    assert len(chunks) > 3
    texts = [c["text"] for c in chunks]
    # Each chunk fits the model whole: NONE would refuse anything longer.
    body = s.post("/v1/embeddings", json={"input": texts, "truncate": "NONE"}).json()
    assert len(body["data"]) == len(texts), body
    for c in chunks:
        assert 0 < c["tokens"] <= 254, c
    assert max(c["tokens"] for c in chunks) > 200  # and they are not needlessly small
