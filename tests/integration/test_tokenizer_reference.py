"""ragd's WordPiece tokenizer against Hugging Face `tokenizers` from PyPI,
live: the golden texts of tests/fixtures/wordpiece_golden.jsonl plus
mixed-Unicode strings from a fixed seed, single and pair (with truncation),
with the tokenizer loaded from tokenizer.json and from vocab.txt.

The C side runs through tests/tools/tokenize_tool (built next to ragd as
build/tokenize_tool). The model is $RAGD_MODELS/all-MiniLM-L6-v2 or
./models/all-MiniLM-L6-v2 (`make models`)."""

import importlib.util
import json
import os
import random
import subprocess
from pathlib import Path

import pytest
import tokenizers
from conftest import RAGD_BIN, REPO

MODEL_NAME = "all-MiniLM-L6-v2"
GOLDEN = REPO / "tests" / "fixtures" / "wordpiece_golden.jsonl"
TOOL = Path(os.environ.get("RAGD_TOKENIZE_TOOL", str(RAGD_BIN.parent / "tokenize_tool")))
N_RANDOM = 200


def _golden_script():
    spec = importlib.util.spec_from_file_location("gen_tokenizer_golden", REPO / "scripts" / "gen_tokenizer_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEN = _golden_script()


@pytest.fixture(scope="module")
def model_dir():
    base = os.environ.get("RAGD_MODELS")
    d = Path(base) / MODEL_NAME if base else REPO / "models" / MODEL_NAME
    if not (d / "tokenizer.json").exists():
        pytest.fail(f"{d}/tokenizer.json not found: run `make models` (or set RAGD_MODELS)")
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not found: build the project (cmake --build build) first")
    return d


@pytest.fixture(scope="module")
def reference(model_dir):
    assert tokenizers.__version__ == GEN.TOKENIZERS_VERSION, (
        f"tokenizers {tokenizers.__version__} installed, the fixtures were made with {GEN.TOKENIZERS_VERSION}"
    )
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    return tok


def run_tool(model_dir, requests, vocab=False):
    """Sends the requests to tokenize_tool, returns its answers in order."""
    args = [str(TOOL)] + (["--vocab"] if vocab else []) + [str(model_dir)]
    inp = "".join(json.dumps(r) + "\n" for r in requests)
    p = subprocess.run(args, input=inp, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(out) == len(requests), p.stderr
    return out


def request_of(case):
    r = {"text_hex": case["text"].encode("utf-8").hex(), "max_len": case.get("max_len", 0), "side": case.get("side", "end")}
    if case.get("pair") is not None:
        r["pair_hex"] = case["pair"].encode("utf-8").hex()
    return r


def cases_for(tok, cases):
    """The library's answer for each case, in the golden file's format."""
    return [
        GEN.record(tok, "pair" if c.get("pair") is not None else "single", c["text"], c.get("pair"),
                   c.get("max_len", 0), c.get("side", "end"))
        for c in cases
    ]


def compare(expected, got):
    bad = []
    for e, g in zip(expected, got):
        if "error" in g:
            bad.append(f"{e['text']!r}: tool error {g['error']}")
            continue
        for key in ("ids", "type_ids", "seq", "offsets"):
            if g[key] != e[key]:
                bad.append(f"{e['text']!r} / {e.get('pair')!r}: {key}\n  library {e[key]}\n  ragd    {g[key]}")
                break
        else:
            if e["kind"] == "single" and not e["max_len"]:
                specials = sum(1 for s in e["seq"] if s < 0)
                if g["count"] != len(e["ids"]) - specials:
                    bad.append(f"{e['text']!r}: count {g['count']} != {len(e['ids']) - specials}")
    assert not bad, f"{len(bad)} of {len(expected)} differ:\n" + "\n".join(bad[:20])


def golden_cases():
    return [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]


def random_cases():
    texts = GEN.random_texts(777, N_RANDOM)
    rng = random.Random(4242)
    cases = [{"text": t} for t in texts]
    for i in range(0, N_RANDOM, 4):  # pairs, truncated or not
        cases.append({"text": texts[i], "pair": texts[i + 1], "max_len": rng.choice([0, 3, 5, 8, 13, 21, 34]),
                      "side": rng.choice(["end", "start"])})
    for i in range(2, N_RANDOM, 8):
        cases.append({"text": texts[i] * 5, "max_len": rng.randint(2, 30), "side": rng.choice(["end", "start"])})
    return cases


def test_golden_fixture_matches_library(reference):
    """The committed fixture is what the pinned library says today."""
    golden = golden_cases()
    assert len(golden) >= 150
    live = cases_for(reference, golden)
    for g, l in zip(golden, live):
        assert (g["ids"], g["offsets"], g["type_ids"]) == (l["ids"], l["offsets"], l["type_ids"]), g["text"]


@pytest.mark.parametrize("vocab", [False, True], ids=["tokenizer.json", "vocab.txt"])
def test_golden_texts_live(model_dir, reference, vocab):
    golden = golden_cases()
    expected = cases_for(reference, golden)
    compare(expected, run_tool(model_dir, [request_of(c) for c in golden], vocab=vocab))


@pytest.mark.parametrize("vocab", [False, True], ids=["tokenizer.json", "vocab.txt"])
def test_random_unicode_live(model_dir, reference, vocab):
    cases = random_cases()
    expected = cases_for(reference, cases)
    compare(expected, run_tool(model_dir, [request_of(c) for c in cases], vocab=vocab))


def test_invalid_utf8_does_not_break(model_dir, reference):
    """Invalid bytes count as U+FFFD, which the normalizer drops: the result
    equals the library's on the text with those bytes removed, offsets
    pointing into the original bytes."""
    raw = b"caf\xc3 ok \xff\xfe end \xe2\x82"
    got = run_tool(model_dir, [{"text_hex": raw.hex()}])[0]
    want = reference.encode("caf ok  end ")
    assert got["ids"] == want.ids
    spans = [raw[s:e] for s, e in got["offsets"][1:-1]]
    assert b"".join(spans) == b"cafokend"
