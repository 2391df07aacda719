"""Every documented error status, with the documented error body."""

import json
import threading
import time

import pytest

from conftest import (
    PDF_BYTES,
    PNG_BYTES,
    binary_bytes,
    expect_error,
    expect_json,
    multipart_body,
    raw_http,
    text_doc,
    unique_word,
)

# ------------------------------------------------------------------ 400

BAD_RETRIEVAL_BODIES = {
    "missing query": {},
    "empty query": {"query": ""},
    "blank query": {"query": "   \n\t "},
    "empty text object": {"query": {"text": ""}},
    "object without text": {"query": {"nope": "x"}},
    "number query": {"query": 5},
    "null query": {"query": None},
    "list query": {"query": ["a", "b"]},
    "query with no words": {"query": "?!? ... --- ***"},
    "top_k 0": {"query": "hello", "top_k": 0},
    "top_k 101": {"query": "hello", "top_k": 101},
    "top_k negative": {"query": "hello", "top_k": -3},
    "top_k string": {"query": "hello", "top_k": "5"},
    "mode dense": {"query": "hello", "mode": "dense"},
    "mode hybrid": {"query": "hello", "mode": "hybrid"},
    "mode unknown": {"query": "hello", "mode": "fuzzy"},
    "mode number": {"query": "hello", "mode": 1},
    "collection number": {"query": "hello", "collection": 5},
}


@pytest.mark.parametrize("body", list(BAD_RETRIEVAL_BODIES.values()), ids=list(BAD_RETRIEVAL_BODIES))
def test_retrieval_bad_request(shared_server, body):
    expect_error(shared_server.post("/v1/retrieval", json=body), 400, "invalid_request")


def test_nul_in_a_string_is_refused_not_cut(shared_server):
    """cJSON would end the C string at an escaped NUL and the text would be
    cut without a word: refused with 400 instead; an escaped backslash
    followed by "u0000" is ordinary text."""
    for path, body in (("/v1/retrieval", '{"query": "abc\\u0000def"}'),
                       ("/v1/collections", '{"name": "x\\u0000y"}')):
        err = expect_error(shared_server.post(path, data=body, headers={"Content-Type": "application/json"}), 400,
                           "invalid_request")
        assert "NUL" in err["message"]
    r = shared_server.post("/v1/retrieval", data='{"query": "abc\\\\u0000def"}',
                           headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def test_retrieval_top_k_bounds_accepted(shared_server):
    for k in (1, 100):
        body = shared_server.retrieve("hello", top_k=k)
        assert isinstance(body["data"], list)


@pytest.mark.parametrize("path", ["/v1/retrieval", "/v1/collections"])
@pytest.mark.parametrize("raw", [b"{not json", b"", b"{\"query\": \"x\"", b"[1, 2]", b"\"just a string\"",
                                 b"{\"query\": \"\xff\xfe\"}"])
def test_malformed_json_is_400(shared_server, path, raw):
    r = shared_server.post(path, data=raw, headers={"Content-Type": "application/json"})
    expect_error(r, 400, "invalid_request")


# ------------------------------------------------------------------ 404

NOT_FOUND = [
    ("GET", "/v1/nope"),
    ("GET", "/v1/documents/999999"),
    ("DELETE", "/v1/documents/999999"),
    ("GET", "/v1/tasks/999999"),
    ("GET", "/v1/collections/nope"),
    ("DELETE", "/v1/collections/nope"),
    ("GET", "/v1/documents?collection=nope"),
    ("GET", "/v1/health/nope"),
    ("POST", "/v1/nope/deeper"),
]


@pytest.mark.parametrize("method,path", NOT_FOUND)
def test_not_found(shared_server, method, path):
    expect_error(shared_server.request(method, path), 404, "not_found")


def test_non_numeric_ids(shared_server):
    for path in ("/v1/documents/abc", "/v1/tasks/abc", "/v1/documents/-1", "/v1/tasks/1.5"):
        r = shared_server.get(path)
        assert r.status_code in (400, 404), r.text
        expect_error(r, r.status_code)


# ------------------------------------------------------------------ 405

WRONG_METHOD = [
    ("DELETE", "/v1/health/live"),
    ("POST", "/v1/health/ready"),
    ("POST", "/v1/version"),
    ("POST", "/v1/metrics"),
    ("PUT", "/v1/collections"),
    ("DELETE", "/v1/collections"),
    ("POST", "/v1/collections/docs"),
    ("GET", "/v1/retrieval"),
    ("DELETE", "/v1/retrieval"),
    ("PUT", "/v1/documents"),
    ("DELETE", "/v1/documents"),
    ("PATCH", "/v1/documents/1"),
    ("POST", "/v1/tasks"),
    ("DELETE", "/v1/tasks/1"),
]


@pytest.mark.parametrize("method,path", WRONG_METHOD)
def test_method_not_allowed(shared_server, method, path):
    expect_error(shared_server.request(method, path), 405, "method_not_allowed")


# ------------------------------------------------------------------ 413


def test_upload_over_limit_is_413(make_server):
    s = make_server("--max-upload-mb", "1")
    big = (("All work and no play makes a dull appliance. " * 50) + "\n").encode() * 1000  # ~2.2 MB
    assert len(big) > 2 * 1024 * 1024
    ctype, body = multipart_body([("big.txt", big, "text/plain")])
    status, headers, payload = raw_http(s.port, "POST", "/v1/documents", {"Content-Type": ctype}, body)
    assert status == 413, payload[:500]
    assert headers.get("content-type", "").startswith("application/json"), headers
    err = json.loads(payload.decode())["error"]
    assert err["code"] == 413 and err["type"] == "payload_too_large" and err["message"]

    # nothing was stored, the server still works, and a file under the limit goes in
    assert expect_json(s.get("/v1/health/live"), 200) == {"status": "live"}
    assert s.documents() == []
    word = unique_word()
    medium = (text_doc(word) + ("Plain filler sentence for size. " * 12 + "\n\n") * 500).encode()  # ~200 KB
    assert 100_000 < len(medium) < 1024 * 1024
    s.ingest([("medium.txt", medium)])
    assert s.hits(word)[0]["document"] == "medium.txt"


def test_json_body_over_limit_is_413(make_server):
    s = make_server("--max-body-kb", "1")
    expect_error(s.post("/v1/retrieval", json={"query": "word " * 1000}), 413, "payload_too_large")
    expect_error(s.post("/v1/collections", json={"name": "big", "metadata": {"x": "y" * 4096}}), 413,
                 "payload_too_large")
    expect_error(s.get("/v1/collections/big"), 404)
    assert isinstance(s.retrieve("small query")["data"], list)
    s.post_json("/v1/collections", {"name": "small", "metadata": {"x": "y"}}, status=201)


# ------------------------------------------------------------------ 415


@pytest.mark.parametrize("name,data,ctype", [
    ("image.png", PNG_BYTES, "image/png"),
    ("blob.bin", binary_bytes(), "application/octet-stream"),
    ("paper.pdf", PDF_BYTES, "application/pdf"),
    ("noext", binary_bytes(seed=3), "application/octet-stream"),
])
def test_unsupported_upload_is_415(server, name, data, ctype):
    expect_error(server.upload([(name, data, ctype)]), 415, "unsupported_media_type")
    assert server.documents() == []
    assert server.get_json("/v1/tasks")["data"] == []


def test_one_unsupported_file_fails_the_whole_request(server):
    word = unique_word()
    r = server.upload([("good.txt", text_doc(word)), ("bad.png", PNG_BYTES, "image/png"),
                       ("good2.md", "# Fine\n\nFine text.\n")])
    expect_error(r, 415, "unsupported_media_type")
    time.sleep(0.3)
    assert server.documents() == []
    assert server.get_json("/v1/tasks")["data"] == []
    assert server.hits(word) == []


def test_binary_named_txt_is_not_indexed(server):
    """Binary content behind a .txt name is refused: either at upload (415)
    or as a failed task; never a searchable document."""
    r = server.upload([("disguised.txt", binary_bytes(seed=11), "text/plain")])
    if r.status_code == 415:
        expect_error(r, 415, "unsupported_media_type")
        assert server.documents() == []
        return
    body = expect_json(r, 202)
    t = server.wait_task(body["data"][0]["id"])
    assert t["state"] == "failed" and t["error"], t
    docs = server.documents()
    assert all(d["status"] == "failed" for d in docs), docs


# ------------------------------------------------------------------ documents without text, bad UTF-8


@pytest.mark.parametrize("name,data", [
    ("empty.txt", b""),
    ("blank.txt", b"  \n\n\t  \r\n"),
    ("empty.md", b""),
    ("bare.html", b"<html><head></head><body>  </body></html>"),
])
def test_document_without_text_fails_its_task(server, name, data):
    body = expect_json(server.upload([(name, data)]), 202)
    t = server.wait_task(body["data"][0]["id"])
    assert t["state"] == "failed", t
    assert isinstance(t["error"], str) and t["error"].strip(), t
    assert t["outcome"] is None, t
    docs = server.documents()
    assert len(docs) == 1, docs
    d = docs[0]
    assert d["name"] == name and d["status"] == "failed"
    assert isinstance(d["error"], str) and d["error"].strip()
    assert d["chunks"] == 0
    if t.get("document_id") is not None:
        assert t["document_id"] == d["id"]
    # the server carries on
    word = unique_word()
    server.ingest([("after.txt", text_doc(word))])
    assert server.hits(word)[0]["document"] == "after.txt"


def test_invalid_utf8_is_replaced(server):
    word = unique_word()
    data = (b"Legacy export from an old system. The " + word.encode() + b" field reads caf\xe9 and na\xefve "
            b"and a stray \xff byte and a broken \xc3\x28 pair.\n\nThe rest of the file is ordinary text.\n")
    t = server.ingest([("legacy.txt", data)])[0]
    assert t["state"] == "done"
    hits = server.hits(word)
    assert len(hits) == 1
    text = hits[0]["text"]
    assert "\ufffd" in text
    assert "ordinary text" in server.document(t["document_id"], chunks=True)["chunk_list"][-1]["text"]
    for c in server.document(t["document_id"], chunks=True)["chunk_list"]:
        assert len(c["text"]) == c["offsets"]["end"] - c["offsets"]["start"]


# ------------------------------------------------------------------ 401


def test_api_key(make_server):
    s = make_server("--api-key", "s3cret-key")
    # health and the static UI need no key
    assert expect_json(s.get("/v1/health/live", auth=False), 200) == {"status": "live"}
    assert expect_json(s.get("/v1/health/ready", auth=False), 200) == {"status": "ready"}
    assert s.get("/", auth=False).status_code == 200

    guarded = [("GET", "/v1/collections"), ("GET", "/v1/version"), ("GET", "/v1/metrics"),
               ("GET", "/v1/documents"), ("GET", "/v1/tasks"), ("POST", "/v1/collections")]
    for method, path in guarded:
        expect_error(s.request(method, path, auth=False), 401, "unauthorized")
        expect_error(s.request(method, path, auth=False, headers={"Authorization": "Bearer wrong"}), 401)
        expect_error(s.request(method, path, auth=False, headers={"Authorization": "s3cret-key"}), 401)
        expect_error(s.request(method, path, auth=False, headers={"Authorization": "Basic s3cret-key"}), 401)
        expect_error(s.request(method, path, auth=False, headers={"Authorization": "Bearer s3cret-key-and-more"}),
                     401)
    expect_error(s.post("/v1/retrieval", json={"query": "x"}, auth=False), 401, "unauthorized")

    word = unique_word()
    r = s.upload([("secret.txt", text_doc(word))], auth=False)
    expect_error(r, 401, "unauthorized")
    assert s.documents() == []

    # with the key everything works
    expect_json(s.get("/v1/collections"), 200)
    expect_json(s.get("/v1/version"), 200)
    assert s.metrics().status_code == 200
    s.ingest([("secret.txt", text_doc(word))])
    assert s.hits(word)[0]["document"] == "secret.txt"


def test_api_key_from_environment(make_server):
    s = make_server(env={"RAGD_API_KEY": "from-env"})
    expect_error(s.get("/v1/collections", auth=False), 401, "unauthorized")
    expect_error(s.get("/v1/collections", auth=False, headers={"Authorization": "Bearer other"}), 401)
    expect_json(s.get("/v1/collections", auth=False, headers={"Authorization": "Bearer from-env"}), 200)
    assert s.get("/v1/health/ready", auth=False).status_code == 200


def test_no_key_configured_needs_no_header(server):
    expect_json(server.get("/v1/collections", headers={"Authorization": "Bearer anything"}), 200)
    expect_json(server.get("/v1/collections"), 200)


# ------------------------------------------------------------------ 503


def check_overloaded(r):
    expect_error(r, 503, "overloaded")
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.strip().isdigit() and int(ra) >= 1, r.headers


def test_full_queue_refuses_whole_request(make_server):
    s = make_server("--queue", "1", "--workers", "1")
    names = [f"q{i}.txt" for i in range(8)]
    words = [unique_word() for _ in names]
    r = s.upload([(n, text_doc(w)) for n, w in zip(names, words)])
    check_overloaded(r)
    time.sleep(0.3)
    assert s.documents() == []
    assert s.get_json("/v1/tasks")["data"] == []
    # a request that fits goes in
    s.ingest([("fits.txt", text_doc(words[0]))])
    assert s.hits(words[0])[0]["document"] == "fits.txt"


def test_refused_upload_creates_no_collection(make_server):
    s = make_server("--queue", "1", "--workers", "1")
    r = s.upload([(f"r{i}.txt", text_doc(unique_word())) for i in range(4)], collection="refused")
    check_overloaded(r)
    expect_error(s.get("/v1/collections/refused"), 404)


def test_flood_answers_202_or_503(make_server):
    s = make_server("--queue", "1", "--workers", "1")
    n = 16
    filler = ("Padding sentence that makes the file take a little while to chunk. " * 20 + "\n\n") * 40
    words = [unique_word() for _ in range(n)]
    results = [None] * n
    barrier = threading.Barrier(n)

    def send(i):
        barrier.wait()
        results[i] = s.upload([(f"flood{i}.txt", text_doc(words[i], filler))])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    accepted = []
    for i, r in enumerate(results):
        assert r is not None, f"upload {i} never answered"
        assert r.status_code in (202, 503), r.text
        if r.status_code == 503:
            check_overloaded(r)
        else:
            accepted.append((i, expect_json(r, 202)["data"][0]))
    assert accepted, "at least the first upload must be accepted"
    for i, task in accepted:
        assert s.wait_task(task["id"])["state"] == "done"
        assert {h["document"] for h in s.hits(words[i])} == {f"flood{i}.txt"}
    refused = {i for i, r in enumerate(results) if r.status_code == 503}
    names = {d["name"] for d in s.documents()}
    assert names == {f"flood{i}.txt" for i, _ in accepted}
    assert not any(f"flood{i}.txt" in names for i in refused)
