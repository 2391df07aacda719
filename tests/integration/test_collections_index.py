"""Per-collection index settings (flat or HNSW) through the API and the CLI,
and the embedding backlog: chunks stored without vectors for the loaded
model are embedded in the background and become densely searchable."""

import os
import struct
import time
from pathlib import Path

import pytest

from conftest import REPO, expect_error, expect_json, run_cli

MODEL_DIR = Path(os.environ.get("RAGD_MODELS", str(REPO / "models"))) / "all-MiniLM-L6-v2"
BACKLOG_TIMEOUT_S = 90

DOCS = [
    ("pets.txt", b"The feline curled up on the rug and purred while the kitten chased a ball of yarn."),
    ("finance.txt", b"Quarterly revenue grew by ten percent and operating margins improved across regions."),
    ("weather.txt", b"Heavy rain and strong winds are expected along the coast tomorrow afternoon."),
    ("space.txt", b"The rocket reached orbit and deployed its satellite payload after a smooth launch."),
]


def names(body):
    return [h["document"] for h in body["data"]]


def model_server(make_server, **kw):
    assert (MODEL_DIR / "config.json").exists(), f"no model at {MODEL_DIR}: run `make models`"
    return make_server("--embed-model", str(MODEL_DIR), **kw)


def index_kind(path):
    """The kind in a ragd vector index file's header: 0 flat, 1 HNSW."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"RAGDVEC2"  # index/dense.c: magic, dim, kind, max id, then length and checksum
    return struct.unpack("<iiq", head[8:24])[1]


def wait_vectors(server, collection, timeout=BACKLOG_TIMEOUT_S):
    """Polls the collection until every chunk has a vector; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        c = server.get_json(f"/v1/collections/{collection}")
        if c["vectors"]["pending"] == 0 and c["vectors"]["count"] == c["chunks"]:
            return c
        assert time.monotonic() < deadline, f"backlog not done after {timeout}s: {c}"
        time.sleep(0.3)


# ---- index settings ----------------------------------------------------------


def test_create_hnsw_collection_shows_its_settings(server):
    body = {"name": "graph", "index": {"type": "hnsw", "m": 16, "ef_construction": 80, "ef_search": 128}}
    c = expect_json(server.post("/v1/collections", json=body), 201)
    assert c["index"] == {"type": "hnsw", "m": 16, "ef_construction": 80, "ef_search": 128}
    assert server.get_json("/v1/collections/graph")["index"] == c["index"]
    # Defaults fill what is not given; a plain collection is flat.
    c = expect_json(server.post("/v1/collections", json={"name": "g2", "index": {"type": "hnsw"}}), 201)
    assert c["index"] == {"type": "hnsw", "m": 32, "ef_construction": 40, "ef_search": 64}
    c = expect_json(server.post("/v1/collections", json={"name": "plain"}), 201)
    assert c["index"] == {"type": "flat"}
    listed = {c["name"]: c["index"] for c in server.get_json("/v1/collections")["data"]}
    assert listed["graph"]["m"] == 16 and listed["plain"] == {"type": "flat"}
    # Without a model there are no vectors to report.
    assert "vectors" not in listed


@pytest.mark.parametrize("index, words", [
    ({"type": "ivf"}, "flat"),
    ("hnsw", "object"),
    ({"type": "hnsw", "m": 2}, "index.m"),
    ({"type": "hnsw", "m": 500}, "4..128"),
    ({"type": "hnsw", "m": 16.5}, "index.m"),
    ({"type": "hnsw", "m": "16"}, "index.m"),
    ({"type": "hnsw", "ef_search": 100000}, "ef_search"),
    ({"type": "hnsw", "ef_construction": 0}, "ef_construction"),
    ({"type": "hnsw", "ef": 10}, "unknown index setting"),
    ({"type": "flat", "m": 16}, "hnsw"),
    ({"m": 16}, "hnsw"),
])
def test_invalid_index_settings_are_400(server, index, words):
    err = expect_error(server.post("/v1/collections", json={"name": "bad", "index": index}), 400)
    assert words in err["message"], err
    assert server.get("/v1/collections/bad").status_code == 404


def test_hnsw_collection_serves_dense_retrieval(make_server):
    s = model_server(make_server)
    expect_json(s.post("/v1/collections", json={"name": "graph", "index": {"type": "hnsw", "m": 8}}), 201)
    s.ingest(DOCS, collection="graph")
    s.ingest(DOCS[:1], collection="plain")
    assert names(s.retrieve("kitty", mode="dense", collection="graph"))[0] == "pets.txt"
    assert names(s.retrieve("stock market earnings", mode="dense", collection="graph"))[0] == "finance.txt"
    c = s.get_json("/v1/collections/graph")
    assert c["vectors"]["count"] == c["chunks"] == 4 and c["vectors"]["pending"] == 0

    # A deleted document leaves the HNSW results (the graph is rebuilt).
    pets = next(d for d in s.documents(collection="graph") if d["name"] == "pets.txt")
    assert s.delete(f"/v1/documents/{pets['id']}").status_code == 200
    assert "pets.txt" not in names(s.retrieve("kitty", mode="dense", collection="graph", top_k=4))

    s.stop()
    files = {p.name: p for p in (s.data_dir / "indexes").glob("collection-*.faiss")}
    graph_file = files[f"collection-{c['id']}.faiss"]
    assert index_kind(graph_file) == 1
    s.restart()
    assert names(s.retrieve("spacecraft launch", mode="dense", collection="graph"))[0] == "space.txt"
    plain_id = s.get_json("/v1/collections/plain")["id"]
    assert index_kind(s.data_dir / "indexes" / f"collection-{plain_id}.faiss") == 0

    # An index file of the other kind (a flat file where HNSW is configured)
    # is rebuilt as HNSW, and search still works.
    s.stop()
    graph_file.write_bytes((s.data_dir / "indexes" / f"collection-{plain_id}.faiss").read_bytes())
    assert index_kind(graph_file) == 0
    s.restart()
    assert names(s.retrieve("storm at sea", mode="dense", collection="graph"))[0] == "weather.txt"
    s.stop()
    assert index_kind(graph_file) == 1


def test_cli_ingest_index_option(make_server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, data in DOCS:
        (docs / name).write_bytes(data)
    data_dir = tmp_path / "data"
    run_cli(["ingest", docs, "--collection", "g", "--index", "hnsw,m=12,ef_search=96"], data_dir=data_dir, check=0)
    # An existing collection keeps its settings: asking for others fails.
    r = run_cli(["ingest", docs, "--collection", "g", "--index", "flat"], data_dir=data_dir)
    assert r.returncode == 1 and "hnsw" in r.stderr, r.stderr
    r = run_cli(["ingest", docs, "--collection", "h", "--index", "hnsw,m=1000"], data_dir=data_dir)
    assert r.returncode == 1 and "'m'" in r.stderr, r.stderr
    r = run_cli(["ingest", docs, "--collection", "h", "--index", "annoy"], data_dir=data_dir)
    assert r.returncode == 1 and "flat or hnsw" in r.stderr, r.stderr
    s = model_server(make_server, data_dir=data_dir)
    c = s.get_json("/v1/collections/g")
    assert c["index"] == {"type": "hnsw", "m": 12, "ef_construction": 40, "ef_search": 96}
    assert s.get("/v1/collections/h").status_code == 404
    # Ingested without a model (the tests' CLI default), embedded by the
    # server's backlog, then found densely through the HNSW index.
    wait_vectors(s, "g")
    assert names(s.retrieve("kitty", mode="dense", collection="g"))[0] == "pets.txt"


# ---- the embedding backlog ---------------------------------------------------


def test_backlog_embeds_documents_ingested_without_a_model(make_server):
    lexical = make_server()  # --embed-model none
    lexical.ingest(DOCS)
    lexical.ingest(DOCS[:2], collection="other")
    lexical.stop()

    s = model_server(make_server, data_dir=lexical.data_dir)
    # Startup does not wait for the backlog; interactive calls answer meanwhile.
    assert s.get("/v1/health/ready").status_code == 200
    c = wait_vectors(s, "default")
    assert c["vectors"]["count"] == 4 and c["vectors"]["model"] == "all-MiniLM-L6-v2"
    wait_vectors(s, "other")
    assert names(s.retrieve("kitty", mode="dense"))[0] == "pets.txt"
    assert names(s.retrieve("spacecraft launch", mode="dense"))[0] == "space.txt"
    assert names(s.retrieve("stock market earnings", mode="dense", collection="other"))[0] == "finance.txt"
    hybrid = s.retrieve("storm forecast rain", top_k=3)
    assert hybrid["data"][0]["ranks"] == {"lexical": 1, "dense": 1}

    # Vectors and index survive a restart: nothing is pending afterwards.
    s.stop()
    s.restart()
    c = s.get_json("/v1/collections/default")
    assert c["vectors"]["pending"] == 0
    assert names(s.retrieve("kitty", mode="dense"))[0] == "pets.txt"


def test_backlog_picks_up_chunks_another_process_stores(make_server, tmp_path):
    s = model_server(make_server)
    s.ingest(DOCS[:2])  # embedded at ingestion: the index's newest ids
    doc = tmp_path / "late.txt"
    doc.write_bytes(b"Volcanic eruptions send ash clouds high into the stratosphere.")
    run_cli(["ingest", doc], data_dir=s.data_dir, check=0)  # --embed-model none
    wait_vectors(s, "default")
    assert names(s.retrieve("lava mountain explosion", mode="dense"))[0] == "late.txt"


def test_backlog_of_chunks_older_than_the_index(make_server, tmp_path):
    """Chunks without vectors whose ids are below the index's newest (the
    index caught up past them) must still reach the index at once."""
    lexical = make_server()
    lexical.ingest(DOCS[:1])  # pets.txt: no vectors
    lexical.stop()
    newer = tmp_path / "newer"
    newer.mkdir()
    for name, data in DOCS[1:]:
        (newer / name).write_bytes(data)
    run_cli(["ingest", newer, "--embed-model", MODEL_DIR], data_dir=lexical.data_dir, check=0)
    s = model_server(make_server, data_dir=lexical.data_dir)
    wait_vectors(s, "default")
    assert names(s.retrieve("kitty", mode="dense", top_k=4))[0] == "pets.txt"
    assert names(s.retrieve("spacecraft launch", mode="dense"))[0] == "space.txt"
