"""Durability: a clean restart keeps everything; a crash loses nothing that
was acknowledged and leaves no half-written document."""

import time

from conftest import expect_error, long_doc, markdown_doc, text_doc, unique_word


def snapshot(s, words):
    return {
        "collections": sorted(s.get_json("/v1/collections")["data"], key=lambda c: c["name"]),
        "documents": sorted(s.documents(), key=lambda d: d["id"]),
        "chunks": {d["id"]: s.document(d["id"], chunks=True)["chunk_list"] for d in s.documents()},
        "hits": {w: [(h["chunk_id"], h["document_id"], h["text"], h["offsets"]) for h in s.hits(w)] for w in words},
    }


def test_restart_keeps_everything(server):
    words = [unique_word() for _ in range(4)]
    server.post_json("/v1/collections", {"name": "kept", "metadata": {"k": "v"}}, status=201)
    t = server.ingest([("a.txt", text_doc(words[0])), ("b.md", markdown_doc(words[1]))], metadata={"src": "test"})
    t += server.ingest([("c.md", long_doc([words[2]]))], collection="kept")
    gone = server.ingest([("gone.txt", text_doc(words[3]))])[0]
    assert server.delete(f"/v1/documents/{gone['document_id']}").status_code == 200
    before = snapshot(server, words)
    tasks_before = {x["id"]: x for x in server.get_json("/v1/tasks?limit=100")["data"]}
    assert len(before["documents"]) == 3

    rc = server.stop()
    assert rc == 0, f"SIGTERM should end ragd cleanly, exit status {rc}"
    server.restart()

    after = snapshot(server, words)
    assert after == before
    assert server.hits(words[3]) == []
    expect_error(server.get(f"/v1/documents/{gone['document_id']}"), 404)
    for tid, task in tasks_before.items():
        assert server.get_json(f"/v1/tasks/{tid}")["state"] == task["state"]
    assert server.get_json("/v1/collections/kept")["metadata"] == {"k": "v"}

    # and it keeps working: re-upload is still recognised, new uploads go in
    again = server.ingest([("a.txt", text_doc(words[0]))], metadata={"src": "test"})[0]
    assert again["outcome"] == "unchanged" and again["document_id"] == t[0]["document_id"]
    w = unique_word()
    server.ingest([("new.txt", text_doc(w))])
    assert server.hits(w)[0]["document"] == "new.txt"


def test_kill_after_done_loses_nothing(make_server):
    s = make_server()
    words = [unique_word() for _ in range(5)]
    tasks = s.ingest([(f"d{i}.txt", text_doc(w)) for i, w in enumerate(words)])
    before = snapshot(s, words)
    s.kill()
    s.restart()
    assert snapshot(s, words) == before
    for w, t in zip(words, tasks):
        assert [h["document_id"] for h in s.hits(w)] == [t["document_id"]]


def test_crash_during_ingest_resumes(make_server):
    s = make_server("--workers", "2", "--queue", "64")
    n = 24
    words = [[unique_word(), unique_word()] for _ in range(n)]
    files = [(f"crash{i:02d}.md", long_doc(words[i], paragraphs=40)) for i in range(n)]
    tasks = s.upload_ok(files)
    s.kill()  # right after the 202

    s.restart()
    time.sleep(0.2)
    s.kill()  # and once more while it resumes
    s.restart()

    final = {t["id"]: s.wait_task(t["id"], timeout=60) for t in tasks}
    by_name = {}
    for t in tasks:
        f = final[t["id"]]
        assert f["name"] == t["name"]
        if f["state"] == "failed":
            assert isinstance(f["error"], str) and f["error"].strip(), f
        else:
            assert f["state"] == "done" and f["outcome"] == "added", f
            by_name[f["name"]] = f["document_id"]
    assert by_name, "no task survived the crash"

    lst = s.get_json("/v1/tasks?limit=100")["data"]
    assert not [x for x in lst if x["state"] in ("queued", "running")], lst

    docs = s.documents()
    names = [d["name"] for d in docs]
    assert len(names) == len(set(names)), f"duplicate documents after resume: {names}"
    for d in docs:
        if d["status"] == "ready":
            assert d["chunks"] > 0, d
            assert by_name.get(d["name"]) == d["id"], d
            full = s.document(d["id"], chunks=True)
            assert len(full["chunk_list"]) == d["chunks"]
            assert [c["ordinal"] for c in full["chunk_list"]] == list(range(d["chunks"]))
        else:
            assert d["status"] == "failed" and d["error"], d
            assert d["chunks"] == 0
    assert {d["name"] for d in docs if d["status"] == "ready"} == set(by_name)

    for i, (name, _) in enumerate(files):
        for w in words[i]:
            hits = s.hits(w)
            if name in by_name:
                assert hits and all(h["document_id"] == by_name[name] for h in hits), (name, w, hits)
            else:
                assert hits == [], (name, w, hits)


def test_orphaned_upload_files_are_swept_at_start(server):
    word = unique_word()
    server.ingest([("kept.txt", text_doc(word))])
    server.stop()
    uploads = server.data_dir / "uploads"
    orphan = uploads / ("ab" * 12 + ".upload")
    orphan.write_bytes(b"half an upload that was never acknowledged")
    server.restart()
    assert not orphan.exists()
    assert [h["document"] for h in server.hits(word)] == ["kept.txt"]
