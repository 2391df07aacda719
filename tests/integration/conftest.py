"""Shared machinery for ragd's integration tests.

The tests run against a real `ragd serve` process started on a free port
with a fresh data directory. The binary is $RAGD_BIN, or build/ragd in the
repository. Helpers here are importable from the test modules
(`from conftest import ...`) and are also methods of RagdServer.
"""

import json
import os
import random
import re
import signal
import socket
import string
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
RAGD_BIN = Path(os.environ.get("RAGD_BIN", str(REPO / "build" / "ragd")))

READY_TIMEOUT_S = 30.0
TASK_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 30.0
TERMINAL_STATES = ("done", "failed")
TASK_STATES = ("queued", "running", "done", "failed")

CONTENT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".xml": "application/xml",
}


def project_version():
    """The version CMakeLists.txt declares (what --version and /v1/version report)."""
    text = (REPO / "CMakeLists.txt").read_text()
    m = re.search(r"project\(\s*ragd\s+VERSION\s+([0-9][0-9.]*)", text)
    assert m, "no project(ragd VERSION x.y.z) in CMakeLists.txt"
    return m.group(1)


def unique_word(prefix="zq"):
    """A made-up lowercase word no other document contains."""
    return prefix + "".join(random.choice(string.ascii_lowercase) for _ in range(10))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """The environment for a ragd child: inherited, minus ragd's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
    if extra:
        env.update(extra)
    return env


def run_cli(args, data_dir=None, env=None, timeout=120, check=None):
    """Runs `ragd ARGS...` ([--data DIR] appended when data_dir is given).

    Returns the CompletedProcess (text mode); with check=N asserts the
    exit status is N and shows the output when it is not."""
    cmd = [str(RAGD_BIN)] + [str(a) for a in args]
    # As for servers: lexical-only unless the test names a model.
    if cmd[1:2] in (["ingest"], ["search"]) and "--help" not in cmd and "--embed-model" not in cmd:
        cmd += ["--embed-model", "none"]
    if data_dir is not None:
        cmd += ["--data", str(data_dir)]
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=clean_env(env), timeout=timeout)
    if check is not None:
        assert p.returncode == check, (
            f"{cmd} exited {p.returncode}, expected {check}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
        )
    return p


# ---------------------------------------------------------------- assertions


def _describe(resp):
    body = resp.text
    if len(body) > 2000:
        body = body[:2000] + "..."
    return f"{resp.request.method} {resp.url} -> {resp.status_code} {resp.headers.get('Content-Type')}: {body}"


def is_json_content_type(resp):
    ctype = resp.headers.get("Content-Type", "")
    return ctype.split(";")[0].strip().lower() == "application/json"


def expect_json(resp, status=200):
    """Asserts the status and a JSON content type; returns the decoded body."""
    assert resp.status_code == status, _describe(resp)
    assert is_json_content_type(resp), "not application/json: " + _describe(resp)
    try:
        return resp.json()
    except ValueError:
        pytest.fail("body is not JSON: " + _describe(resp))


ERROR_TYPES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "overloaded",
}


def expect_error(resp, status, type_=None):
    """Asserts an error answer: the status, a JSON content type, and the body
    {"error":{"message":non-empty str,"type":str,"code":status}} with the
    documented type for the status. Returns the inner error object."""
    body = expect_json(resp, status)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), "no error object: " + _describe(resp)
    err = body["error"]
    assert isinstance(err.get("message"), str) and err["message"].strip(), "error without message: " + _describe(resp)
    assert err.get("code") == status, "error.code differs from the status: " + _describe(resp)
    want = type_ or ERROR_TYPES.get(status)
    if want:
        assert err.get("type") == want, f"error.type should be {want}: " + _describe(resp)
    else:
        assert isinstance(err.get("type"), str) and err["type"], _describe(resp)
    return err


# ---------------------------------------------------------------- the server


class ServerStartError(RuntimeError):
    pass


class RagdServer:
    """A `ragd serve` child process on 127.0.0.1 with its own data directory.

    extra_args are appended to the command line; an `--api-key KEY` among
    them (or RAGD_API_KEY in env) becomes the default key that the request
    helpers send. env adds variables to the child's environment (ragd's own
    RAGD_* variables from the test runner's environment are not inherited)."""

    def __init__(self, data_dir, extra_args=(), env=None, start=True, binary=None, ready_timeout=READY_TIMEOUT_S):
        self.binary = Path(binary) if binary else RAGD_BIN
        self.ready_timeout = ready_timeout
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.extra_args = [str(a) for a in extra_args]
        # Lexical-only unless a test asks for a model: the foundation tests
        # assert BM25 behaviour; the embedding tests name the model.
        if "--embed-model" not in self.extra_args:
            self.extra_args += ["--embed-model", "none"]
        # No generator either unless asked for (tests/integration/test_completions*.py).
        if "--gen-model" not in self.extra_args:
            self.extra_args += ["--gen-model", "none"]
        # Nor the default reranker (the generator's GGUF asked yes/no):
        # tests/integration/test_lmrerank.py starts it.
        if "--rerank-model" not in self.extra_args:
            self.extra_args += ["--rerank-model", "none"]
        self.env = dict(env or {})
        self.api_key = self.env.get("RAGD_API_KEY")
        if "--api-key" in self.extra_args:
            i = self.extra_args.index("--api-key")
            self.api_key = self.extra_args[i + 1]
        self.log_path = self.data_dir / "ragd-test-server.log"
        self.proc = None
        self.port = None
        self.returncode = None
        self.http = self._session()
        if start:
            self.start()

    @staticmethod
    def _session():
        sess = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        sess.mount("http://", adapter)
        return sess

    # -- lifecycle

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        return [
            str(self.binary), "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--data", str(self.data_dir), *self.extra_args,
        ]

    def start(self, port=None):
        if not self.binary.is_file() or not os.access(self.binary, os.X_OK):
            raise ServerStartError(f"ragd binary not found at {self.binary} (build it, or set RAGD_BIN)")
        last = None
        for attempt in range(4):
            self.port = port if (port and attempt == 0) else free_port()
            try:
                self._start_once()
                return self
            except ServerStartError as exc:
                last = exc
                log = self.log_tail()
                if not re.search(r"in use|EADDRINUSE|bind", log, re.I):
                    raise
        raise last

    def _start_once(self):
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=clean_env(self.env),
            )
        self.returncode = None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self.proc = None
                raise ServerStartError(f"ragd serve exited with {rc} before it was ready\n{self.log_tail()}")
            try:
                r = self.http.get(self.url + "/v1/health/ready", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise ServerStartError(f"ragd serve not ready within {self.ready_timeout:.0f} s\n{self.log_tail()}")

    def stop(self, timeout=15):
        """SIGTERM, wait up to timeout seconds, then SIGKILL. Returns the exit status."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self.proc = None
        return self.returncode

    def kill(self):
        """SIGKILL at once (a crash). Returns the exit status."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.returncode = self.proc.returncode
        self.proc = None
        return self.returncode

    def restart(self):
        """Stops the process (if running) and starts it again on the same data
        directory, on the same port when that is still free."""
        self.stop()
        self.http.close()
        self.http = self._session()
        return self.start(port=self.port)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, max_chars=8000):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-max_chars:]

    # -- requests

    def headers(self, auth=True, headers=None):
        h = {}
        if auth and self.api_key:
            h["Authorization"] = "Bearer " + self.api_key
        if headers:
            h.update(headers)
        return h

    def request(self, method, path, auth=True, headers=None, timeout=HTTP_TIMEOUT_S, **kw):
        return self.http.request(method, self.url + path, headers=self.headers(auth, headers), timeout=timeout, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def get_json(self, path, status=200, **kw):
        return expect_json(self.get(path, **kw), status)

    def post_json(self, path, body, status=200, **kw):
        return expect_json(self.post(path, json=body, **kw), status)

    # -- documents, tasks, retrieval

    def upload(self, files, collection=None, metadata=None, field="file", **kw):
        """POST /v1/documents. files: [(name, bytes)] or [(name, bytes, content_type)].
        metadata: a dict (sent as JSON) or a str (sent as is). Returns the response."""
        parts = []
        for f in files:
            name, data = f[0], f[1]
            ctype = f[2] if len(f) > 2 else CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
            if isinstance(data, str):
                data = data.encode()
            parts.append((field, (name, data, ctype)))
        fields = {}
        if collection is not None:
            fields["collection"] = collection
        if metadata is not None:
            fields["metadata"] = metadata if isinstance(metadata, str) else json.dumps(metadata)
        return self.post("/v1/documents", files=parts, data=fields, **kw)

    def upload_ok(self, files, collection=None, metadata=None, **kw):
        """Uploads, asserts the 202 answer lists one task per file, returns the task list."""
        resp = self.upload(files, collection=collection, metadata=metadata, **kw)
        body = expect_json(resp, 202)
        assert body.get("object") == "list", body
        tasks = body.get("data")
        assert isinstance(tasks, list) and len(tasks) == len(files), body
        for t, f in zip(tasks, files):
            assert t.get("object") == "task", t
            assert isinstance(t.get("id"), int), t
            assert t.get("name") == f[0], (t, f[0])
            assert t.get("state") in TASK_STATES, t
        return tasks

    def wait_task(self, task_id, timeout=TASK_TIMEOUT_S):
        """Polls GET /v1/tasks/{id} until done or failed; returns the task object."""
        deadline = time.monotonic() + timeout
        task = None
        while time.monotonic() < deadline:
            task = self.get_json(f"/v1/tasks/{task_id}")
            assert task.get("state") in TASK_STATES, task
            if task["state"] in TERMINAL_STATES:
                return task
            time.sleep(0.05)
        pytest.fail(f"task {task_id} not finished within {timeout:.0f} s: {task}")

    def ingest(self, files, collection=None, metadata=None, expect="done", timeout=TASK_TIMEOUT_S, **kw):
        """Uploads and waits for every task; with expect="done" asserts that each
        task is done with a document id. Returns the final task objects."""
        tasks = self.upload_ok(files, collection=collection, metadata=metadata, **kw)
        final = [self.wait_task(t["id"], timeout=timeout) for t in tasks]
        if expect:
            for t in final:
                assert t["state"] == expect, t
                if expect == "done":
                    assert isinstance(t.get("document_id"), int), t
        return final

    def retrieve(self, query, status=200, **fields):
        """POST /v1/retrieval; returns the decoded body (asserting the status)."""
        body = {"query": query}
        body.update(fields)
        return expect_json(self.post("/v1/retrieval", json=body), status)

    def hits(self, query, **fields):
        return self.retrieve(query, **fields)["data"]

    def documents(self, collection=None, limit=100, offset=0):
        q = f"?limit={limit}&offset={offset}"
        if collection is not None:
            q += f"&collection={collection}"
        body = self.get_json("/v1/documents" + q)
        assert body.get("object") == "list", body
        return body["data"]

    def document(self, doc_id, chunks=False):
        return self.get_json(f"/v1/documents/{doc_id}" + ("?include=chunks" if chunks else ""))

    def metrics(self):
        r = self.get("/v1/metrics")
        assert r.status_code == 200, _describe(r)
        return r


def metric_values(text, name):
    """[(labels dict, value)] for every sample of metric `name` in Prometheus text."""
    out = []
    pat = re.compile(r"^" + re.escape(name) + r"(\{(.*)\})?\s+(\S+)(\s+\d+)?\s*$")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = pat.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out.append((labels, float(m.group(3))))
    return out


def raw_http(port, method, path, headers, body, timeout=30):
    """Sends one request over a plain socket and returns (status, headers, body).

    Unlike requests it keeps going when the server answers early (e.g. 413
    before the upload is read) and closes the connection: sending stops at
    the first error and whatever answer arrived is read."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    for k, v in headers.items():
        head += f"{k}: {v}\r\n"
    head += "\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data = b""
    try:
        try:
            s.sendall(head.encode())
            view = memoryview(body)
            step = 64 * 1024
            for i in range(0, len(body), step):
                s.sendall(view[i : i + step])
        except OSError:
            pass
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
    finally:
        s.close()
    if not data:
        pytest.fail(f"{method} {path}: the server closed the connection without an answer")
    head_b, _, rest = data.partition(b"\r\n\r\n")
    lines = head_b.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        out = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2 :]
        rest = out
    elif "content-length" in hdrs:
        rest = rest[: int(hdrs["content-length"])]
    return status, hdrs, rest


def multipart_body(files, fields=None, boundary="ragdtestboundary7MA4YWxkTrZu0gW"):
    """Builds a multipart/form-data body; returns (content_type, bytes)."""
    out = bytearray()
    for k, v in (fields or {}).items():
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
    for name, data, ctype in files:
        out += (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


# ---------------------------------------------------------------- sample content


def text_doc(word, extra=""):
    return (
        f"Release notes for the storage layer.\n\n"
        f"The {word} setting controls how often the journal is flushed to disk. "
        f"Operators usually leave it alone.\n\n{extra}"
    )


def markdown_doc(word):
    return (
        "# Guide\n\n"
        "An introduction to the appliance and what it is for.\n\n"
        "## Deleting\n\n"
        f"To delete a document, call the endpoint with its id; the {word} flag keeps a backup.\n\n"
        "- first item of a list\n- second item of a list\n"
    )


def html_doc(word):
    return (
        "<!DOCTYPE html><html><head><title>Field manual</title>"
        "<style>body { color: red; }</style><script>var hidden = 'scriptword';</script></head>"
        f"<body><h1>Field manual</h1><p>Keep the <b>{word}</b> valve closed during transport.</p>"
        "<ul><li>Check the seals</li><li>Record the pressure</li></ul></body></html>"
    )


def xml_doc(word):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<catalog>\n  <part id="p1">\n    <name>Gasket</name>\n'
        f"    <note>The {word} gasket seals the pump housing.</note>\n  </part>\n</catalog>\n"
    )


def long_doc(words, paragraphs=60):
    """A Markdown document of several thousand words (many chunks) with
    non-ASCII text, so code-point and byte offsets differ. `words` are
    sprinkled one per section."""
    rng = random.Random(1234)
    vocab = (
        "naïve café résumé über straße ångström déjà vu — the a of to in index chunk token "
        "vector search query answer model store journal flush page section heading offset "
        "overlap boundary sentence paragraph"
    ).split()
    out = ["# Long handbook\n"]
    for p in range(paragraphs):
        if p % 10 == 0:
            out.append(f"\n## Section {p // 10} ✓\n")
        sent = []
        for _ in range(5):
            n = rng.randint(8, 16)
            s = " ".join(rng.choice(vocab) for _ in range(n))
            sent.append(s[0].upper() + s[1:] + ".")
        if p % 10 == 5 and words:
            sent.append(f"The keyword here is {words[(p // 10) % len(words)]}.")
        out.append("\n" + " ".join(sent) + "\n")
    return "".join(out)


PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
PDF_BYTES = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
)


def binary_bytes(n=4096, seed=7):
    rng = random.Random(seed)
    data = bytearray(rng.getrandbits(8) for _ in range(n))
    for i in range(0, n, 7):
        data[i] = 0
    return bytes(data)


# ---------------------------------------------------------------- fixtures


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    node = request.node
    return any(getattr(node, "rep_" + w, None) is not None and getattr(node, "rep_" + w).failed
               for w in ("setup", "call"))


def _teardown(request, servers):
    for s in servers:
        s.stop()
    if _failed(request):
        for s in servers:
            print(f"\n---- ragd log ({s.log_path}) ----\n{s.log_tail()}")


@pytest.fixture
def make_server(request, tmp_path):
    """Factory: make_server(*extra_args, data_dir=None, env=None) starts a
    RagdServer (data dir under tmp_path unless given); all are stopped after
    the test and their logs printed when it failed."""
    servers = []
    counter = [0]

    def factory(*extra_args, data_dir=None, env=None):
        if data_dir is None:
            counter[0] += 1
            data_dir = tmp_path / f"data{counter[0]}"
        s = RagdServer(data_dir, extra_args=extra_args, env=env, start=False)
        servers.append(s)
        s.start()
        return s

    yield factory
    _teardown(request, servers)


@pytest.fixture
def server(make_server):
    """A fresh ragd serve with default options and an empty data dir."""
    return make_server()


@pytest.fixture(scope="module")
def shared_server(request, tmp_path_factory):
    """One server for a whole module, for tests that only read or that use
    their own unique words and collections."""
    s = RagdServer(tmp_path_factory.mktemp("shared") / "data")
    yield s
    s.stop()
    if request.session.testsfailed:
        print(f"\n---- ragd log ({s.log_path}) ----\n{s.log_tail()}")
