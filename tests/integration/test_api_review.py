"""Regression tests for defects found reviewing api/ and the upload path:
multipart part boundaries, errors found while the body is still arriving,
HEAD, error bodies that quote invalid UTF-8, and strict numeric input."""

import json
import resource
import socket
import time

from conftest import expect_error, expect_json, unique_word


def _part(name, filename, data):
    head = f'--XX\r\nContent-Disposition: form-data; name="{name}"'
    if filename is not None:
        head += f'; filename="{filename}"\r\nContent-Type: text/plain'
    return head.encode() + b"\r\n\r\n" + data + b"\r\n"


def _send_in_pieces(port, path, headers, body, step, chunked=False):
    """Sends the body `step` bytes at a time (so MHD sees it in pieces) and
    returns (status, decoded JSON body)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(head.encode())
        for i in range(0, len(body), step):
            piece = body[i : i + step]
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            time.sleep(0.001)
        if chunked:
            s.sendall(b"0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    assert data, "the server closed the connection without an answer"
    head_b, _, rest = data.partition(b"\r\n\r\n")
    return int(head_b.split()[1]), json.loads(rest)


def test_empty_file_part_does_not_swallow_the_next_file(server):
    """An empty file followed by other files must give one task per file,
    each with its own name and bytes, however the body is split."""
    words = [unique_word() for _ in range(2)]
    body = (_part("file", "empty.txt", b"") + _part("file", "first.md", f"# T\n\n{words[0]} text\n".encode())
            + _part("file", "blank.txt", b"") + _part("collection", None, b"default")
            + _part("file", "second.txt", f"{words[1]} more text\n".encode()) + b"--XX--\r\n")
    names = ["empty.txt", "first.md", "blank.txt", "second.txt"]
    for step in (len(body), 1, 5, 17):
        status, payload = _send_in_pieces(server.port, "/v1/documents",
                                          {"Content-Type": "multipart/form-data; boundary=XX"}, body, step)
        assert status == 202, payload
        assert [t["name"] for t in payload["data"]] == names, (step, payload)
        states = {t["name"]: server.wait_task(t["id"])["state"] for t in payload["data"]}
        assert states == {"empty.txt": "failed", "first.md": "done", "blank.txt": "failed",
                          "second.txt": "done"}, (step, states)
    assert server.hits(words[0])[0]["document"] == "first.md"
    assert server.hits(words[1])[0]["document"] == "second.txt"


def test_many_files_in_one_upload(server):
    """Every file part used to keep its spool file open until the end of the
    request: with 128 descriptors, 300 files must still be queued."""
    resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (128, 128))
    word = unique_word()
    files = [(f"f{i:03d}.txt", f"{word} number {i}\n".encode()) for i in range(300)]
    body = expect_json(server.upload(files), 202)
    assert [t["name"] for t in body["data"]] == [n for n, _ in files]


def test_upload_over_limit_found_mid_body_is_413(make_server):
    """Content-Length within the slack the server allows for multipart
    framing, file data over the limit: the limit is found while the body is
    arriving, and the answer must still be a 413, not a dropped connection."""
    s = make_server("--max-upload-mb", "1")
    body = _part("file", "big.txt", b"a" * ((1 << 20) + 1000)) + b"--XX--\r\n"
    status, payload = _send_in_pieces(s.port, "/v1/documents",
                                      {"Content-Type": "multipart/form-data; boundary=XX"}, body, 65536)
    assert status == 413 and payload["error"]["type"] == "payload_too_large", payload
    assert s.documents() == []
    assert list((s.data_dir / "uploads").glob("*.upload")) == []


def test_chunked_bodies_over_limit_are_413(make_server):
    s = make_server("--max-upload-mb", "1", "--max-body-kb", "1")
    body = _part("file", "big.txt", b"a" * ((1 << 20) + 1000)) + b"--XX--\r\n"
    status, payload = _send_in_pieces(s.port, "/v1/documents",
                                      {"Content-Type": "multipart/form-data; boundary=XX"}, body, 65536,
                                      chunked=True)
    assert status == 413 and payload["error"]["type"] == "payload_too_large", payload
    big_json = json.dumps({"query": "word " * 1000}).encode()
    status, payload = _send_in_pieces(s.port, "/v1/retrieval", {"Content-Type": "application/json"}, big_json,
                                      256, chunked=True)
    assert status == 413 and payload["error"]["type"] == "payload_too_large", payload
    # the server carries on
    expect_json(s.get("/v1/health/live"))


def test_malformed_multipart_found_mid_body_is_400(server):
    body = (b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n"
            b"--XXgarbage" + b"x" * 100000)
    status, payload = _send_in_pieces(server.port, "/v1/documents",
                                      {"Content-Type": "multipart/form-data; boundary=XX"}, body, 4096)
    assert status in (400, 415), payload
    assert server.documents() == []


def test_head_is_get_without_a_body(make_server):
    s = make_server("--api-key", "k3y")
    r = s.request("HEAD", "/v1/health/live", auth=False)
    assert r.status_code == 200 and r.content == b""
    assert s.request("HEAD", "/", auth=False).status_code == 200
    # HEAD of a protected route still needs the key
    assert s.request("HEAD", "/v1/collections", auth=False).status_code == 401
    assert s.request("HEAD", "/v1/collections").status_code == 200


def test_error_messages_are_valid_utf8(server):
    for path in ("/v1/collections/%ff%fe", "/v1/nothing%c3", "/v1/documents/%ff"):
        r = server.get(path)
        assert r.status_code == 404
        r.content.decode("utf-8")  # raises on invalid UTF-8
        expect_error(r, 404, "not_found")


def test_ids_are_plain_digits(server):
    t = server.ingest([("a.txt", f"{unique_word()} text\n".encode())])[0]
    doc = t["document_id"]
    expect_json(server.get(f"/v1/documents/{doc}"))
    for alias in (f"+{doc}", f"%20{doc}", f"-0{doc}"):
        expect_error(server.get(f"/v1/documents/{alias}"), 404, "not_found")


def test_top_k_out_of_range_numbers_are_400(server):
    for raw in (b'{"query":"x","top_k":1e400}', b'{"query":"x","top_k":-1e300}', b'{"query":"x","top_k":1e19}'):
        r = server.post("/v1/retrieval", data=raw, headers={"Content-Type": "application/json"})
        expect_error(r, 400, "invalid_request")
