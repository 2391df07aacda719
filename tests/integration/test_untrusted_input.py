"""Hostile or oversized documents: each gives a clear per-document outcome,
never a crash, a hang or text that should not be there."""

import time

from conftest import run_cli, unique_word


def test_deeply_nested_html_is_bounded_and_searchable(server):
    word = unique_word()
    depth = 100_000
    html = ("<html><body>" + "<div>" * depth + f"<p>bottom {word} paragraph</p>" + "</div>" * depth
            + "</body></html>").encode()
    started = time.monotonic()
    (task,) = server.upload_ok([("deep.html", html)])
    task = server.wait_task(task["id"])
    assert task["state"] == "done", task
    assert time.monotonic() - started < 20
    hits = server.retrieve(word)["data"]
    assert hits and hits[0]["document"] == "deep.html"
    assert server.get("/v1/health/live").status_code == 200


def test_xml_external_entity_is_never_loaded(server):
    word = unique_word()
    xml = (b'<?xml version="1.0"?>\n<!DOCTYPE note [<!ENTITY leak SYSTEM "file:///etc/passwd">]>\n'
           b"<note><body>" + word.encode() + b" &leak; end</body></note>")
    (task,) = server.upload_ok([("xxe.xml", xml)])
    task = server.wait_task(task["id"])
    if task["state"] == "done":
        doc = server.get_json(f"/v1/documents/{task['document_id']}?include=chunks")
        text = " ".join(c["text"] for c in doc["chunk_list"])
        assert word in text
        assert "root:" not in text
    assert not server.retrieve("root bin daemon nologin")["data"]


def test_200_megabyte_file_gets_a_clear_error(tmp_path):
    big = tmp_path / "big.txt"
    line = b"The quick brown fox jumps over the lazy dog near the riverbank at dawn.\n"
    with open(big, "wb") as f:
        block = line * 10_000
        for _ in range((200 << 20) // len(block) + 1):
            f.write(block)
    started = time.monotonic()
    proc = run_cli(["ingest", big], data_dir=tmp_path / "data", timeout=120)
    assert time.monotonic() - started < 60
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "exceeds the limit" in proc.stderr, proc.stderr
    assert "errors: 1" in proc.stdout
    ls = run_cli(["ls"], data_dir=tmp_path / "data", check=0)
    assert "failed" in ls.stdout and "big.txt" in ls.stdout
