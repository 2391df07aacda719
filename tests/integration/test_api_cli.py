"""The command line: ingest, ls, search, rm, --help, --version, and its
agreement with the server on the same data directory."""

import re

import pytest

from conftest import (
    PNG_BYTES,
    REPO,
    RagdServer,
    html_doc,
    markdown_doc,
    project_version,
    run_cli,
    text_doc,
    unique_word,
)

COMMANDS = ["serve", "ingest", "ls", "rm", "search"]


def summary_counts(output):
    """Reads the counts of documents, chunks and errors from ingest's summary
    ("3 documents, 7 chunks, 1 error" or "documents: 3 chunks: 7 errors: 1")."""
    lines = [x for x in output.splitlines() if re.search(r"document", x, re.I) and re.search(r"error", x, re.I)
             and re.search(r"chunk", x, re.I)]
    if lines:
        output = lines[-1]
    counts = {}
    for key in ("documents", "chunks", "errors"):
        stem = key[:-1]
        m = (re.search(r"\b" + stem + r"s?\s*[:=]\s*(\d+)", output, re.I)
             or re.search(r"(\d+)\s+" + stem + r"s?\b", output, re.I)
             or re.search(r"\b" + stem + r"s?\s+(\d+)", output, re.I))
        assert m, f"no count of {key} in the ingest summary:\n{output}"
        counts[key] = int(m.group(1))
    return counts


def with_server(data_dir, fn):
    s = RagdServer(data_dir)
    try:
        return fn(s)
    finally:
        s.stop()


@pytest.fixture
def tree(tmp_path):
    words = {name: unique_word() for name in ("a.txt", "b.md", "c.html")}
    root = tmp_path / "corpus"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text(text_doc(words["a.txt"]))
    (root / "sub" / "b.md").write_text(markdown_doc(words["b.md"]))
    (root / "sub" / "deeper" / "c.html").write_text(html_doc(words["c.html"]))
    (root / "sub" / "picture.png").write_bytes(PNG_BYTES)
    return root, words


def test_ingest_ls_search_rm(tmp_path, tree):
    root, words = tree
    data = tmp_path / "data"
    p = run_cli(["ingest", root], data_dir=data)
    out = p.stdout + p.stderr
    assert p.returncode in (0, 1), out
    counts = summary_counts(out)
    assert counts["documents"] == 3, out
    assert counts["errors"] == 1, out
    assert counts["chunks"] >= 3, out
    assert "picture.png" in out, "the failed file should be named"

    ls = run_cli(["ls"], data_dir=data, check=0).stdout
    for name in words:
        assert name in ls, ls
    # the binary file is absent, or listed as a failed document
    for line in ls.splitlines():
        if "picture.png" in line:
            assert "failed" in line, line

    for name, w in words.items():
        found = run_cli(["search", w], data_dir=data, check=0).stdout
        assert name in found, found
        others = [n for n in words if n != name]
        assert not any(o in found for o in others), found

    # the server sees what the CLI wrote
    def ids(s):
        every = s.documents()
        docs = [d for d in every if d["status"] == "ready"]
        assert sorted(d["name"].rsplit("/", 1)[-1] for d in docs) == sorted(words)
        assert all(d["chunks"] > 0 for d in docs)
        for d in every:
            if d["status"] != "ready":
                assert d["name"].endswith("picture.png") and d["status"] == "failed" and d["error"], d
        for name, w in words.items():
            assert [h["document"].rsplit("/", 1)[-1] for h in s.hits(w)] == [name]
        return {d["name"].rsplit("/", 1)[-1]: d["id"] for d in docs}

    doc_ids = with_server(data, ids)
    line = next(x for x in ls.splitlines() if "a.txt" in x)
    assert re.search(r"\b%d\b" % doc_ids["a.txt"], line), f"ls should show the id {doc_ids['a.txt']}: {line}"

    run_cli(["rm", doc_ids["a.txt"]], data_dir=data, check=0)
    ls = run_cli(["ls"], data_dir=data, check=0).stdout
    assert "a.txt" not in ls and "b.md" in ls
    assert "a.txt" not in run_cli(["search", words["a.txt"]], data_dir=data, check=0).stdout
    assert run_cli(["rm", doc_ids["a.txt"]], data_dir=data).returncode != 0

    # ingesting the same tree again changes nothing
    p = run_cli(["ingest", root], data_dir=data)
    assert p.returncode in (0, 1)
    ls2 = run_cli(["ls"], data_dir=data, check=0).stdout
    assert ls2.count("b.md") == 1 and ls2.count("c.html") == 1 and "a.txt" in ls2
    assert ls2.count("picture.png") <= 1


def test_collection_option(tmp_path):
    data = tmp_path / "data"
    w1, w2 = unique_word(), unique_word()
    (tmp_path / "one.txt").write_text(text_doc(w1))
    (tmp_path / "two.txt").write_text(text_doc(w2))
    run_cli(["ingest", tmp_path / "one.txt", "--collection", "alpha"], data_dir=data, check=0)
    run_cli(["ingest", tmp_path / "two.txt"], data_dir=data, check=0)

    alpha = run_cli(["ls", "--collection", "alpha"], data_dir=data, check=0).stdout
    assert "one.txt" in alpha and "two.txt" not in alpha
    every = run_cli(["ls"], data_dir=data, check=0).stdout
    assert "one.txt" in every and "two.txt" in every
    assert "one.txt" in run_cli(["search", w1, "--collection", "alpha"], data_dir=data, check=0).stdout
    assert "one.txt" not in run_cli(["search", w1, "--collection", "default"], data_dir=data).stdout

    def check(s):
        assert [d["name"].rsplit("/", 1)[-1] for d in s.documents(collection="alpha")] == ["one.txt"]
    with_server(data, check)


def test_search_k(tmp_path):
    data = tmp_path / "data"
    common = unique_word()
    for i in range(4):
        (tmp_path / f"k{i}.txt").write_text(text_doc(common, extra=f"Number {i}.\n"))
    run_cli(["ingest"] + [tmp_path / f"k{i}.txt" for i in range(4)], data_dir=data, check=0)
    all_out = run_cli(["search", common, "-k", "10"], data_dir=data, check=0).stdout
    assert sum(f"k{i}.txt" in all_out for i in range(4)) == 4, all_out
    one = run_cli(["search", common, "-k", "1"], data_dir=data, check=0).stdout
    assert sum(f"k{i}.txt" in one for i in range(4)) == 1, one


def test_data_dir_from_environment(tmp_path):
    data = tmp_path / "envdata"
    w = unique_word()
    (tmp_path / "env.txt").write_text(text_doc(w))
    run_cli(["ingest", tmp_path / "env.txt"], env={"RAGD_DATA": str(data)}, check=0)
    assert "env.txt" in run_cli(["ls"], env={"RAGD_DATA": str(data)}, check=0).stdout
    assert "env.txt" in run_cli(["ls"], data_dir=data, check=0).stdout
    assert "env.txt" in run_cli(["search", w], env={"RAGD_DATA": str(data)}, check=0).stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    p = run_cli([command, "--help"], check=0)
    out = p.stdout + p.stderr
    assert "usage" in out.lower(), out
    assert command in out


def test_version():
    p = run_cli(["--version"], check=0)
    assert project_version() in p.stdout


def test_unknown_command_fails():
    p = run_cli(["frobnicate"])
    assert p.returncode != 0
    assert (p.stderr + p.stdout).strip()


def test_sample_corpus(tmp_path):
    corpus = REPO / "sample_corpus"
    files = [f for f in corpus.rglob("*") if f.is_file()]
    assert files, "sample_corpus/ is empty"
    data = tmp_path / "data"
    p = run_cli(["ingest", corpus], data_dir=data)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    counts = summary_counts(out)
    assert counts["errors"] == 0, out
    assert counts["documents"] >= 1 and counts["chunks"] >= counts["documents"], out

    found = run_cli(["search", "chunking overlap"], data_dir=data, check=0).stdout
    names = {f.name for f in files}
    assert any(n in found for n in names), f"search printed no corpus file:\n{found}"

    def check(s):
        hits = s.hits("chunking overlap")
        assert hits, "retrieval over the sample corpus found nothing for 'chunking overlap'"
        assert any("chunk" in h["text"].lower() for h in hits)
        assert all(d["status"] == "ready" for d in s.documents(limit=100))
    with_server(data, check)
