"""Collections: create, list, get, delete, name rules."""

import pytest

from conftest import expect_error, expect_json, text_doc, unique_word

COLLECTION_KEYS = {"object", "id", "name", "metadata", "documents", "chunks", "created_at"}


def check_collection(c, name):
    assert COLLECTION_KEYS <= set(c), c
    assert c["object"] == "collection"
    assert c["name"] == name
    assert isinstance(c["id"], int)
    assert isinstance(c["metadata"], dict)
    assert isinstance(c["documents"], int) and isinstance(c["chunks"], int)
    assert isinstance(c["created_at"], int) and c["created_at"] > 1_600_000_000


def test_create_get_list_delete(server):
    c = server.post_json("/v1/collections", {"name": "docs", "metadata": {"owner": "ops", "n": 3}}, status=201)
    check_collection(c, "docs")
    assert c["metadata"] == {"owner": "ops", "n": 3}
    assert c["documents"] == 0 and c["chunks"] == 0

    got = server.get_json("/v1/collections/docs")
    check_collection(got, "docs")
    assert got["id"] == c["id"] and got["metadata"] == {"owner": "ops", "n": 3}

    server.post_json("/v1/collections", {"name": "other"}, status=201)
    lst = server.get_json("/v1/collections")
    assert lst["object"] == "list"
    names = [x["name"] for x in lst["data"]]
    assert "docs" in names and "other" in names
    for x in lst["data"]:
        check_collection(x, x["name"])

    assert server.delete("/v1/collections/docs").status_code == 200
    expect_error(server.get("/v1/collections/docs"), 404)
    expect_error(server.delete("/v1/collections/docs"), 404)
    names = [x["name"] for x in server.get_json("/v1/collections")["data"]]
    assert "docs" not in names and "other" in names


def test_delete_answer(server):
    server.post_json("/v1/collections", {"name": "gone"}, status=201)
    assert server.delete("/v1/collections/gone").json() == {"name": "gone", "deleted": True}


def test_create_without_metadata_has_empty_object(server):
    c = server.post_json("/v1/collections", {"name": "plain"}, status=201)
    assert c["metadata"] == {}


def test_duplicate_is_409(server):
    server.post_json("/v1/collections", {"name": "dup"}, status=201)
    expect_error(server.post("/v1/collections", json={"name": "dup"}), 409, "conflict")


@pytest.mark.parametrize("name", ["a", "A.b_c-1", "9lives", "x" * 64])
def test_valid_names(server, name):
    c = server.post_json("/v1/collections", {"name": name}, status=201)
    assert c["name"] == name
    assert server.get_json(f"/v1/collections/{name}")["name"] == name


@pytest.mark.parametrize("name", ["", "-lead", ".lead", "_lead", "has space", "x" * 65, "ünï", "a/b", "a*b"])
def test_bad_names_are_400(shared_server, name):
    expect_error(shared_server.post("/v1/collections", json={"name": name}), 400, "invalid_request")


@pytest.mark.parametrize("body", [{}, {"name": 12}, {"name": None}, {"name": ["x"]}, {"name": "ok1", "metadata": "str"},
                                  {"name": "ok2", "metadata": [1]}])
def test_missing_or_wrong_typed_fields_are_400(shared_server, body):
    expect_error(shared_server.post("/v1/collections", json=body), 400, "invalid_request")


def test_counts_follow_uploads(server):
    word = unique_word()
    server.ingest([("one.txt", text_doc(word)), ("two.md", "# Two\n\nSecond file body text.\n")], collection="counted")
    c = server.get_json("/v1/collections/counted")
    assert c["documents"] == 2
    assert c["chunks"] >= 2
    docs = server.documents(collection="counted")
    assert c["chunks"] == sum(d["chunks"] for d in docs)


def test_delete_removes_documents_and_chunks(server):
    word = unique_word()
    keep = unique_word()
    tasks = server.ingest([("inside.txt", text_doc(word))], collection="doomed")
    kept = server.ingest([("outside.txt", text_doc(keep))], collection="kept")
    doc_id = tasks[0]["document_id"]
    assert [h["document_id"] for h in server.hits(word)] == [doc_id]

    assert server.delete("/v1/collections/doomed").status_code == 200
    expect_error(server.get(f"/v1/documents/{doc_id}"), 404)
    assert server.hits(word) == []
    expect_error(server.get("/v1/documents?collection=doomed"), 404)
    assert doc_id not in [d["id"] for d in server.documents()]
    # the other collection is untouched
    assert [h["document_id"] for h in server.hits(keep)] == [kept[0]["document_id"]]


def test_recreate_after_delete_is_empty(server):
    word = unique_word()
    server.ingest([("a.txt", text_doc(word))], collection="again")
    assert server.delete("/v1/collections/again").status_code == 200
    c = server.post_json("/v1/collections", {"name": "again"}, status=201)
    assert c["documents"] == 0 and c["chunks"] == 0
    assert server.documents(collection="again") == []
    assert server.hits(word, collection="again") == []


def test_upload_creates_collection(server):
    expect_error(server.get("/v1/collections/fresh"), 404)
    server.ingest([("f.txt", text_doc(unique_word()))], collection="fresh")
    c = expect_json(server.get("/v1/collections/fresh"), 200)
    assert c["documents"] == 1
