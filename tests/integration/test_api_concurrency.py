"""Concurrent clients."""

import threading

from conftest import expect_json, markdown_doc, text_doc, unique_word


def test_concurrent_uploads(server):
    n_threads, per_thread = 8, 2
    words = [[unique_word() for _ in range(per_thread)] for _ in range(n_threads)]
    tasks = [None] * n_threads
    errors = []
    barrier = threading.Barrier(n_threads)

    def client(i):
        try:
            barrier.wait()
            files = [(f"t{i}-f{j}.md" if j % 2 else f"t{i}-f{j}.txt",
                      markdown_doc(w) if j % 2 else text_doc(w)) for j, w in enumerate(words[i])]
            r = server.upload(files)
            body = expect_json(r, 202)
            tasks[i] = [server.wait_task(t["id"]) for t in body["data"]]
        except BaseException as exc:  # reported below, with the thread index
            errors.append((i, repr(exc)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors

    doc_ids = set()
    for i in range(n_threads):
        assert tasks[i] is not None and len(tasks[i]) == per_thread
        for j, t in enumerate(tasks[i]):
            assert t["state"] == "done" and t["outcome"] == "added", t
            doc_ids.add(t["document_id"])
            hits = server.hits(words[i][j])
            assert [h["document_id"] for h in hits] == [t["document_id"]], (i, j, hits)
            assert words[i][j] in hits[0]["text"]
    assert len(doc_ids) == n_threads * per_thread
    assert len(server.documents()) == n_threads * per_thread
    c = server.get_json("/v1/collections/default")
    assert c["documents"] == n_threads * per_thread


def test_retrieval_while_ingesting(server):
    seed = unique_word()
    server.ingest([("seed.txt", text_doc(seed))])
    stop = threading.Event()
    failures = []
    counts = [0]

    def reader():
        while not stop.is_set():
            r = server.post("/v1/retrieval", json={"query": seed})
            if r.status_code != 200 or [h["document"] for h in r.json()["data"]] != ["seed.txt"]:
                failures.append((r.status_code, r.text[:300]))
                return
            counts[0] += 1

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        words = [unique_word() for _ in range(12)]
        server.ingest([(f"w{i}.txt", text_doc(w)) for i, w in enumerate(words)])
    finally:
        stop.set()
        for t in readers:
            t.join(30)
    assert not failures, failures
    assert counts[0] > 0
    for i, w in enumerate(words):
        assert [h["document"] for h in server.hits(w)] == [f"w{i}.txt"]
