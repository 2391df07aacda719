"""Malformed and hostile request bodies against every JSON endpoint of a
server running all three default models: each request is a valid body with
a few seeded random mutations (values of the wrong type, out of range,
huge, empty, missing or unknown keys, strings with NUL bytes or lone
surrogates, deep nesting, raw bytes that are not UTF-8). What a client must
always get: a 2xx answer or a JSON error with the right shape (4xx, or
429/503 when busy), never a 5xx, a dropped connection or a hang; and the
server must stay up and answer correctly afterwards.

The seed is fixed, so a failure is reproducible (RAGD_API_FUZZ_SEED and
RAGD_API_FUZZ_ROUNDS change it for longer searches)."""

import copy
import json
import os
import random

import pytest
import requests

from conftest import REPO, expect_error, expect_json, multipart_body

EMBED = REPO / "models" / "all-MiniLM-L6-v2"
GEN = REPO / "models" / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SEED = int(os.environ.get("RAGD_API_FUZZ_SEED", "20261126"))
ROUNDS = int(os.environ.get("RAGD_API_FUZZ_ROUNDS", "1"))

# (path, valid body, requests per round): generation is the costliest, so it
# gets fewer; every body is small so that a mutation, not the size, decides.
BASES = [
    ("/v1/embeddings", {"input": ["hello world", "second text"], "model": "all-MiniLM-L6-v2",
                        "encoding_format": "float", "input_type": "query", "truncate": "END"}, 120),
    ("/v1/ranking", {"query": {"text": "what is a fox"},
                     "passages": [{"text": "a fox is an animal"}, {"text": "the sea"}],
                     "truncate": "END", "top_n": 2}, 50),
    ("/v1/rerank", {"query": "what is a fox", "documents": ["a fox is an animal", {"text": "the sea"}],
                    "top_n": 1, "return_documents": True}, 50),
    ("/v1/retrieval", {"query": "fox", "top_k": 3, "mode": "hybrid", "collection": "fuzz",
                       "rerank": False, "candidates": 10}, 120),
    ("/v1/collections", {"name": "fuzzcoll", "index": {"type": "hnsw", "m": 16, "ef_construction": 40,
                                                       "ef_search": 16}}, 60),
    ("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 3, "temperature": 0.7, "top_p": 0.9,
                         "seed": 1, "stop": ["\n"], "logprobs": 2}, 40),
    ("/v1/chat/completions", {"messages": [{"role": "system", "content": "be brief"},
                                           {"role": "user", "content": "hi"}],
                              "max_tokens": 3, "temperature": 0, "stream": True,
                              "stream_options": {"include_usage": True}, "logprobs": True,
                              "top_logprobs": 2, "stop": "x", "presence_penalty": 0.5,
                              "logit_bias": {"42": -100}}, 40),
]

WEIRD = [None, True, False, 0, -1, 1, 2, 7, -(2 ** 31), 2 ** 31, 2 ** 63, -(2 ** 63), 2 ** 64, 1e308, -1e308,
         0.5, -0.0, 1e-320, "", "x", "\u0000", "a\u0000b", "\ud800", "\udfff\ud800", "\u2028", "NaN", "1e400",
         "12", " ", [], [None], [""], [[]], {}, {"text": None}, {"text": ""}, {"": ""}, "é" * 50, "🔥" * 30,
         ["x"] * 500]


def weird(rng):
    r = rng.random()
    if r < 0.05:
        return "word " * rng.choice([1000, 20000])  # long text
    if r < 0.08:
        depth = rng.choice([50, 2000])  # 2000: see encode()
        # deeper than Python's encoder goes: a marker spliced out in encode()
        return json.loads("[" * depth + "]" * depth) if depth < 900 else f"__deep_{depth}__"
    return copy.deepcopy(rng.choice(WEIRD))  # a fresh copy: later mutations edit in place


def paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


def set_at(obj, path, value):
    if not path:
        return value
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


def delete_at(obj, path):
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    del cur[path[-1]]
    return obj


def mutate(rng, base):
    body = json.loads(json.dumps(base))
    for _ in range(rng.choice([1, 1, 2, 3])):
        all_paths = list(paths(body))
        path = rng.choice(all_paths)
        op = rng.random()
        if op < 0.6 or not path:
            body = set_at(body, path, weird(rng))
        elif op < 0.8:
            body = delete_at(body, path)
        else:
            target = body
            if isinstance(target, dict):
                target[rng.choice(["extra", "model", "n", "stream", "user", "\u0000k"])] = weird(rng)
    return body


def encode(rng, body):
    """The request bytes: JSON, with a deep array spliced in where asked,
    and now and then bytes that are not UTF-8 or not JSON at all."""
    text = json.dumps(body, ensure_ascii=rng.random() < 0.5)
    for depth in (2000,):
        text = text.replace(f'"__deep_{depth}__"', "[" * depth + "]" * depth)
    data = text.encode("utf-8", "surrogatepass")
    r = rng.random()
    if r < 0.03:
        data = data.replace(b'"', b'"\xff', 1)
    elif r < 0.05:
        data = data[: rng.randrange(len(data) + 1)]
    return data


def check_answer(path, data, resp):
    what = f"POST {path} {data[:300]!r}"
    assert resp.status_code < 500 or resp.status_code == 503, f"{what}: {resp.status_code} {resp.text[:500]}"
    if resp.status_code >= 400:
        if resp.status_code in (429, 503):
            return
        # the completion routes name an unknown model as OpenAI does (docs/api.md)
        named = resp.status_code == 404 and path.endswith("completions") and "model" in resp.text
        expect_error(resp, resp.status_code, "model_not_found" if named else None)
        return
    ctype = resp.headers.get("Content-Type", "")
    if ctype.startswith("text/event-stream"):
        assert resp.text.rstrip().endswith("data: [DONE]"), f"{what}: stream did not end: {resp.text[-300:]!r}"
    else:
        json.loads(resp.text)


@pytest.fixture(scope="module")
def full_server(request, tmp_path_factory):
    from conftest import RagdServer
    if not GEN.is_file() or not EMBED.is_dir():
        pytest.fail("the default models are missing: run `make models`")
    s = RagdServer(tmp_path_factory.mktemp("apifuzz") / "data",
                   extra_args=["--embed-model", EMBED, "--gen-model", GEN, "--rerank-model", GEN,
                               "--kv-cache-mb", "16", "--threads", "2"])
    # something for retrieval to find, in the collection the bodies name
    (task,) = s.upload_ok([("fox.txt", b"A fox is a small animal. The sea is large and blue.")], collection="fuzz")
    assert s.wait_task(task["id"])["state"] == "done"
    yield s
    s.stop()
    if request.session.testsfailed:
        print(f"\n---- ragd log ({s.log_path}) ----\n{s.log_tail()}")


@pytest.mark.parametrize("path,base,count", BASES, ids=[b[0] for b in BASES])
def test_mutated_bodies_get_clear_answers(full_server, path, base, count):
    rng = random.Random(f"{SEED}:{path}")
    for i in range(count * ROUNDS):
        body = mutate(rng, base)
        data = encode(rng, body)
        try:
            resp = full_server.http.post(full_server.url + path, data=data, timeout=60,
                                         headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            pytest.fail(f"request {i}: POST {path} {data[:300]!r}: {exc}")
        check_answer(path, data, resp)
        assert full_server.proc.poll() is None, f"ragd exited after POST {path} {data[:300]!r}"
    # and the endpoint still works
    resp = full_server.http.post(full_server.url + path, json=base, timeout=60)
    assert resp.status_code in (200, 201, 202, 409), resp.text[:500]
    expect_json(full_server.get("/v1/health/live"), 200)


UPLOAD_FILES = [
    ("notes.md", b"# Notes\n\nThe fox runs.\n\n- one\n- two\n", "text/markdown"),
    ("page.html", b"<html><body><h1>T</h1><p>fox &amp; sea</p></body></html>", "text/html"),
    ("a.txt", b"plain text about a fox", "text/plain"),
]


def mutate_bytes(rng, data):
    data = bytearray(data)
    for _ in range(rng.choice([1, 2, 4])):
        op = rng.random()
        i = rng.randrange(len(data) + 1)
        if op < 0.3 and data:
            data[min(i, len(data) - 1)] = rng.randrange(256)
        elif op < 0.5:
            data[i:i] = rng.choice([b"\r\n", b"--", b"\x00", b"\"", b";", b"filename=\"", b"\xff\xfe",
                                    b"Content-Disposition: form-data; name=\"file\"\r\n", b"A" * 5000])
        elif op < 0.7:
            del data[i:i + rng.randrange(1, 40)]
        elif op < 0.85:
            j = rng.randrange(len(data) + 1)
            data[i:i] = data[min(i, j):max(i, j)][:2000]
        else:
            del data[i:]
    return bytes(data)


def test_mutated_uploads_get_clear_answers(full_server):
    """Multipart uploads with corrupted boundaries, headers, names and
    fields: a clear answer each (202 with tasks, or a 4xx JSON error), and
    every accepted task reaches a final state."""
    rng = random.Random(f"{SEED}:upload")
    tasks, statuses = [], {}
    for i in range(150 * ROUNDS):
        files = rng.sample(UPLOAD_FILES, rng.randrange(1, len(UPLOAD_FILES) + 1))
        fields = {"collection": rng.choice(["fuzz", "up", "bad name!", "", "x" * 300]),
                  "metadata": rng.choice(['{"k": 1}', "{", "[]", '{"a": {"b": [1, null]}}', "\u0000", ""])}
        ctype, body = multipart_body(files, fields)
        if rng.random() < 0.8:
            body = mutate_bytes(rng, body)
        if rng.random() < 0.1:
            ctype = rng.choice(["multipart/form-data", "multipart/form-data; boundary=", "text/plain",
                                "multipart/form-data; boundary=" + "b" * 200])
        try:
            resp = full_server.http.post(full_server.url + "/v1/documents", data=body, timeout=60,
                                         headers={"Content-Type": ctype})
        except requests.RequestException as exc:
            pytest.fail(f"upload {i}: {body[:300]!r}: {exc}")
        assert resp.status_code < 500 or resp.status_code == 503, f"upload {i}: {resp.status_code} {resp.text[:500]}"
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        if resp.status_code == 202:
            tasks += [t["id"] for t in resp.json()["data"]]
        elif resp.status_code != 503:
            expect_error(resp, resp.status_code)
        assert full_server.proc.poll() is None, f"ragd exited after upload {i}: {body[:300]!r}"
    # the mutations reach both sides: uploads accepted and uploads refused
    assert statuses.get(202) and sum(n for st, n in statuses.items() if 400 <= st < 500), statuses
    states = [full_server.wait_task(t)["state"] for t in tasks]
    assert set(states) <= {"done", "failed"}, states
    print(f"upload answers {sorted(statuses.items())}; tasks done {states.count('done')}, "
          f"failed {states.count('failed')}")
    expect_json(full_server.get("/v1/health/live"), 200)
