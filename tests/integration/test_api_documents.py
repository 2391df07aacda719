"""Uploading documents, tasks, listing, retrieval of what was uploaded,
re-upload semantics, deletion."""

import hashlib

import pytest

from conftest import (
    expect_error,
    expect_json,
    html_doc,
    long_doc,
    markdown_doc,
    text_doc,
    unique_word,
    xml_doc,
)

TASK_KEYS = {"object", "id", "state", "collection", "name", "document_id", "outcome", "progress", "error",
             "created_at", "updated_at"}
DOC_KEYS = {"object", "id", "collection", "name", "source", "mime", "bytes", "sha256", "status", "error",
            "metadata", "title", "chunks", "characters", "created_at", "updated_at"}
HIT_KEYS = {"chunk_id", "document_id", "document", "collection", "text", "score", "metadata", "offsets",
            "heading_path", "page"}
CHUNK_KEYS = {"id", "ordinal", "text", "offsets", "heading_path", "page", "tokens"}


def check_done_task(t, name, collection="default", outcome="added"):
    assert TASK_KEYS <= set(t), t
    assert t["object"] == "task"
    assert t["state"] == "done", t
    assert t["name"] == name
    assert t["collection"] == collection
    assert t["outcome"] == outcome, t
    assert isinstance(t["document_id"], int)
    assert t["error"] is None, t
    p = t["progress"]
    assert isinstance(p, dict) and isinstance(p["done"], int) and isinstance(p["total"], int), t
    assert p["done"] == p["total"], t
    assert isinstance(t["created_at"], int) and isinstance(t["updated_at"], int)
    assert t["updated_at"] >= t["created_at"]


def check_hit(h):
    assert HIT_KEYS <= set(h), h
    assert isinstance(h["chunk_id"], int) and isinstance(h["document_id"], int)
    assert isinstance(h["score"], (int, float))
    assert isinstance(h["metadata"], dict)
    off = h["offsets"]
    assert isinstance(off["start"], int) and isinstance(off["end"], int)
    assert 0 <= off["start"] < off["end"]
    assert len(h["text"]) == off["end"] - off["start"], h


def check_chunks_consistent(doc):
    """Each chunk's offsets are code-point offsets of its text, and where two
    chunks overlap they agree on the overlapping text."""
    chunks = doc["chunk_list"]
    assert len(chunks) == doc["chunks"] > 0
    assert [c["ordinal"] for c in chunks] == list(range(len(chunks)))
    prev_start = -1
    for c in chunks:
        assert CHUNK_KEYS <= set(c), c
        s, e = c["offsets"]["start"], c["offsets"]["end"]
        assert 0 <= s < e <= doc["characters"], (c, doc["characters"])
        assert len(c["text"]) == e - s, f"chunk {c['ordinal']}: {len(c['text'])} code points, offsets {s}..{e}"
        assert s > prev_start, "chunks out of text order"
        prev_start = s
        assert isinstance(c["tokens"], int) and c["tokens"] > 0
    for a, b in zip(chunks, chunks[1:]):
        sa, ea = a["offsets"]["start"], a["offsets"]["end"]
        sb, eb = b["offsets"]["start"], b["offsets"]["end"]
        lo, hi = max(sa, sb), min(ea, eb)
        if lo < hi:
            assert a["text"][lo - sa : hi - sa] == b["text"][lo - sb : hi - sb], (
                f"chunks {a['ordinal']} and {b['ordinal']} disagree on the overlap {lo}..{hi}")


FORMATS = [
    ("notes.txt", text_doc, "text/plain"),
    ("guide.md", markdown_doc, "text/markdown"),
    ("manual.html", html_doc, "text/html"),
    ("parts.xml", xml_doc, "application/xml"),
]


@pytest.mark.parametrize("name,make,mime", FORMATS, ids=[f[0] for f in FORMATS])
def test_upload_list_retrieve(server, name, make, mime):
    word = unique_word()
    data = make(word).encode()
    resp = server.upload([(name, data)])
    body = expect_json(resp, 202)
    assert body["object"] == "list" and body["collection"] == "default"
    assert len(body["data"]) == 1
    t0 = body["data"][0]
    assert t0["object"] == "task" and t0["name"] == name and isinstance(t0["id"], int)
    assert t0["state"] in ("queued", "running", "done")

    task = server.wait_task(t0["id"])
    check_done_task(task, name)
    doc_id = task["document_id"]

    docs = server.documents()
    assert [d["id"] for d in docs] == [doc_id]
    d = docs[0]
    assert DOC_KEYS <= set(d), d
    assert d["object"] == "document" and d["name"] == name and d["collection"] == "default"
    assert d["status"] == "ready" and d["error"] is None
    assert d["mime"] == mime
    assert d["bytes"] == len(data)
    assert d["sha256"] == hashlib.sha256(data).hexdigest()
    assert d["chunks"] > 0 and d["characters"] > 0
    assert d["metadata"] == {}
    assert server.document(doc_id) == d

    hits = server.hits(word)
    assert len(hits) == 1, hits
    h = hits[0]
    check_hit(h)
    assert h["document"] == name and h["document_id"] == doc_id and h["collection"] == "default"
    assert word in h["text"].lower()
    assert h["offsets"]["end"] <= d["characters"]

    full = server.document(doc_id, chunks=True)
    check_chunks_consistent(full)
    by_id = {c["id"]: c for c in full["chunk_list"]}
    assert by_id[h["chunk_id"]]["text"] == h["text"]
    assert by_id[h["chunk_id"]]["offsets"] == h["offsets"]


def test_html_text_is_extracted(server):
    word = unique_word()
    server.ingest([("page.html", html_doc(word))])
    h = server.hits(word)[0]
    assert "<" not in h["text"] and "valve closed" in h["text"]
    assert server.hits("scriptword") == [], "script content must not be indexed"
    assert server.documents()[0]["title"] == "Field manual"


def test_markdown_heading_path(server):
    word = unique_word()
    server.ingest([("guide.md", markdown_doc(word))])
    h = server.hits(word)[0]
    assert "Deleting" in (h["heading_path"] or ""), h


def test_long_document_chunks_and_code_point_offsets(server):
    words = [unique_word() for _ in range(6)]
    data = long_doc(words)
    task = server.ingest([("handbook.md", data)])[0]
    doc = server.document(task["document_id"], chunks=True)
    assert doc["chunks"] >= 3, "a document of several thousand words should make several chunks"
    assert doc["characters"] >= len(data) * 0.9
    check_chunks_consistent(doc)
    for w in words:
        hits = server.hits(w)
        assert hits and all(w in h["text"] for h in hits)
        for h in hits:
            check_hit(h)
            c = next(c for c in doc["chunk_list"] if c["id"] == h["chunk_id"])
            assert c["text"] == h["text"] and c["offsets"] == h["offsets"]


def test_multiple_files_one_request(server):
    words = [unique_word() for _ in range(3)]
    files = [("a.txt", text_doc(words[0])), ("b.md", markdown_doc(words[1])), ("c.html", html_doc(words[2]))]
    tasks = server.upload_ok(files)
    assert len({t["id"] for t in tasks}) == 3
    final = [server.wait_task(t["id"]) for t in tasks]
    for t, (name, _) in zip(final, files):
        check_done_task(t, name)
    assert len({t["document_id"] for t in final}) == 3
    for w, t, (name, _) in zip(words, final, files):
        hits = server.hits(w)
        assert [(h["document_id"], h["document"]) for h in hits] == [(t["document_id"], name)]
    assert len(server.documents()) == 3


def test_documents_field_alias(server):
    word = unique_word()
    tasks = server.upload_ok([("alias.txt", text_doc(word))], field="documents")
    assert server.wait_task(tasks[0]["id"])["state"] == "done"
    assert server.hits(word)[0]["document"] == "alias.txt"


def test_metadata_applied_and_returned(server):
    meta = {"team": "docs", "year": 2024, "tags": ["a", "b"], "nested": {"ok": True}}
    words = [unique_word(), unique_word()]
    tasks = server.ingest([("m1.txt", text_doc(words[0])), ("m2.md", markdown_doc(words[1]))], metadata=meta)
    for t in tasks:
        assert server.document(t["document_id"])["metadata"] == meta
    for w in words:
        h = server.hits(w)[0]
        assert h["metadata"] == meta


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", "\"text\"", "42", "{\"a\": 1"])
def test_invalid_metadata_is_400(server, bad):
    expect_error(server.upload([("x.txt", text_doc(unique_word()))], metadata=bad), 400, "invalid_request")
    assert server.documents() == []
    assert server.get_json("/v1/tasks")["data"] == []


def test_collection_field(server):
    w1, w2 = unique_word(), unique_word()
    body = expect_json(server.upload([("n.txt", text_doc(w1))], collection="notes"), 202)
    assert body["collection"] == "notes"
    t = server.wait_task(body["data"][0]["id"])
    check_done_task(t, "n.txt", collection="notes")
    server.ingest([("d.txt", text_doc(w2))])

    assert [d["name"] for d in server.documents(collection="notes")] == ["n.txt"]
    assert [d["name"] for d in server.documents(collection="default")] == ["d.txt"]
    assert {d["name"] for d in server.documents()} == {"n.txt", "d.txt"}

    hit = server.hits(w1, collection="notes")[0]
    assert hit["collection"] == "notes" and hit["document"] == "n.txt"
    assert server.hits(w1, collection="default") == []
    # no collection: every collection is searched
    assert [h["document"] for h in server.hits(w1)] == ["n.txt"]
    assert [h["document"] for h in server.hits(w2)] == ["d.txt"]


def test_upload_bad_collection_name_is_400(server):
    expect_error(server.upload([("x.txt", "some text here")], collection="bad name!"), 400, "invalid_request")
    assert server.documents() == []


def test_upload_without_files_is_400(server):
    resp = server.post("/v1/documents", files=[("collection", (None, "default"))])
    expect_error(resp, 400, "invalid_request")


def test_upload_json_content_type_is_415(server):
    expect_error(server.post("/v1/documents", json={"file": "hello"}), 415, "unsupported_media_type")


def test_same_bytes_again_is_unchanged(server):
    word = unique_word()
    data = text_doc(word)
    first = server.ingest([("same.txt", data)])[0]
    doc = server.document(first["document_id"])
    second = server.ingest([("same.txt", data)])[0]
    check_done_task(second, "same.txt", outcome="unchanged")
    assert second["document_id"] == first["document_id"]
    assert len(server.documents()) == 1
    assert server.document(first["document_id"])["sha256"] == doc["sha256"]
    assert server.document(first["document_id"])["chunks"] == doc["chunks"]
    assert len(server.hits(word)) == 1


def test_same_bytes_other_collection_is_a_new_document(server):
    data = text_doc(unique_word())
    a = server.ingest([("twin.txt", data)], collection="c1")[0]
    b = server.ingest([("twin.txt", data)], collection="c2")[0]
    check_done_task(b, "twin.txt", collection="c2", outcome="added")
    assert a["document_id"] != b["document_id"]


def test_changed_bytes_replace(server):
    old, new = unique_word(), unique_word()
    first = server.ingest([("evolving.md", markdown_doc(old))])[0]
    assert len(server.hits(old)) == 1
    data = markdown_doc(new).encode()
    second = server.ingest([("evolving.md", data)])[0]
    check_done_task(second, "evolving.md", outcome="replaced")
    assert second["document_id"] == first["document_id"]
    docs = server.documents()
    assert len(docs) == 1
    assert docs[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert docs[0]["bytes"] == len(data)
    assert server.hits(old) == []
    hits = server.hits(new)
    assert [h["document_id"] for h in hits] == [first["document_id"]]
    check_chunks_consistent(server.document(first["document_id"], chunks=True))


def test_delete_document(server):
    gone, kept = unique_word(), unique_word()
    t1, t2 = server.ingest([("gone.txt", text_doc(gone)), ("kept.txt", text_doc(kept))])
    doc_id = t1["document_id"]
    r = server.delete(f"/v1/documents/{doc_id}")
    assert expect_json(r, 200) == {"id": doc_id, "deleted": True}
    expect_error(server.get(f"/v1/documents/{doc_id}"), 404)
    expect_error(server.delete(f"/v1/documents/{doc_id}"), 404)
    assert server.hits(gone) == []
    assert [d["id"] for d in server.documents()] == [t2["document_id"]]
    assert [h["document_id"] for h in server.hits(kept)] == [t2["document_id"]]
    # the same file can be uploaded again afterwards
    again = server.ingest([("gone.txt", text_doc(gone))])[0]
    assert again["outcome"] == "added"
    assert len(server.hits(gone)) == 1


def test_document_list_paging(server):
    server.ingest([(f"p{i}.txt", text_doc(unique_word())) for i in range(5)])
    everything = server.documents()
    assert len(everything) == 5
    first = server.documents(limit=2, offset=0)
    second = server.documents(limit=2, offset=2)
    third = server.documents(limit=2, offset=4)
    assert len(first) == 2 and len(second) == 2 and len(third) == 1
    ids = [d["id"] for d in first + second + third]
    assert sorted(ids) == sorted(d["id"] for d in everything)
    assert server.documents(limit=2, offset=10) == []


def test_unknown_collection_in_document_list_is_404(server):
    expect_error(server.get("/v1/documents?collection=nope"), 404, "not_found")


def test_task_list(server):
    tasks = server.ingest([(f"t{i}.txt", text_doc(unique_word())) for i in range(3)])
    lst = server.get_json("/v1/tasks")
    assert lst["object"] == "list"
    listed = {t["id"]: t for t in lst["data"]}
    for t in tasks:
        assert listed[t["id"]]["state"] == "done"
        assert listed[t["id"]]["name"] == t["name"]
    assert len(server.get_json("/v1/tasks?limit=1")["data"]) == 1
    page = server.get_json("/v1/tasks?limit=2&offset=1")["data"]
    assert len(page) == 2
    assert server.get_json("/v1/tasks?limit=10&offset=3")["data"] == []


def test_retrieval_top_k_and_order(server):
    common = unique_word()
    files = [(f"k{i}.txt", text_doc(common, extra=(f"{common} " * i) + "\n")) for i in range(6)]
    server.ingest(files)
    assert len(server.hits(common)) == 5  # default top_k
    hits = server.hits(common, top_k=2)
    assert len(hits) == 2
    hits = server.hits(common, top_k=100)
    assert len(hits) == 6
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    # the document that repeats the word most ranks first (BM25)
    assert hits[0]["document"] == "k5.txt"


def test_retrieval_answer_shape(server):
    word = unique_word()
    server.ingest([("shape.txt", text_doc(word))])
    body = server.retrieve(word, collection="default", top_k=3, mode="lexical")
    assert body["object"] == "list" and body["mode"] == "lexical"
    assert len(body["data"]) == 1
    check_hit(body["data"][0])
    u = body["usage"]
    assert isinstance(u["prompt_tokens"], int) and u["prompt_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"]
    # query as an object
    body2 = server.retrieve({"text": word})
    assert [h["chunk_id"] for h in body2["data"]] == [h["chunk_id"] for h in body["data"]]
    assert body2["mode"] == "lexical"


def test_retrieval_no_match_is_empty_list(server):
    server.ingest([("x.txt", text_doc(unique_word()))])
    assert server.hits(unique_word()) == []


@pytest.mark.parametrize("query", [
    'what\'s "this" (thing)?', "NEAR(a b) OR NOT AND", "col:value * ^x", "-minus +plus", "a\"b", "\u00fcber caf\u00e9",
])
def test_retrieval_punctuation_is_not_a_syntax_error(server, query):
    word = unique_word()
    server.ingest([("p.txt", text_doc(word))])
    body = server.retrieve(query)
    assert isinstance(body["data"], list)
    # the user's words are matched, whatever punctuation surrounds them
    assert server.hits(f'("{word}")?!')[0]["document"] == "p.txt"


def test_retrieval_unknown_collection_is_404(server):
    expect_error(server.post("/v1/retrieval", json={"query": "hello", "collection": "nope"}), 404, "not_found")
