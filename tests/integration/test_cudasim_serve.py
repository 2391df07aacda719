"""`ragd serve --device cuda` with the default models, its CUDA code run on
the CPU by cudasim (tests/cudasim; the build's ragd_cudasim is the server
linked against it): the CUDA paths as a client meets them, through the
engines' batching, the decoder's graphs and HTTP, where no GPU is.

- /v1/version says all three models run on CUDA;
- embeddings of golden texts sent as concurrent requests (the embedder
  batches across them) are within cosine 0.999 of sentence-transformers'
  (the CUDA bound of tests/unit/test_encoder_cuda.c), and a document
  ingested through the CUDA embedder is found by dense retrieval;
- /v1/ranking with the default reranker (f32 on the device), two requests
  at once, gives transformers' scores within 1e-3, in their order;
- chat: streaming clients at once, decoded together in one batch while
  sequences join and leave, each get exactly the text their prompt gets
  alone, and a client that hangs up mid-stream is cancelled without
  touching the others. Exactly, because this server's cudasim computes
  every product column by column (CUDASIM_GEMM_COLUMNS), so no sum depends
  on the batch; on a GPU, cuBLAS's order may move a near-tie, and
  tests/unit/test_decoder_cuda.c holds batched decoding to 1e-2 there.

Speed means nothing here (some 10^4 times slower than a GPU)."""

import json
import os
import threading
import time

import pytest
import requests
from openai import OpenAI

from conftest import RAGD_BIN, REPO, RagdServer, ServerStartError, expect_json, metric_values
from test_completions import QUESTIONS as QUESTIONS_ALL
from test_embeddings import cosine
from test_lmrerank import GROUPS, HF_TOL, NAME as RERANK_NAME, assert_golden_order

SIM_BIN = RAGD_BIN.parent / "ragd_cudasim"
MODELS = os.environ.get("RAGD_MODELS", str(REPO / "models"))
EMBED_DIR = os.path.join(MODELS, "all-MiniLM-L6-v2")
GEN_FILE = os.path.join(MODELS, "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
GEN_NAME = "SmolLM2-135M-Instruct.Q4_1"
EMB_GOLDEN = [json.loads(line) for line in (REPO / "tests/fixtures/embedding_golden.jsonl").read_text().splitlines()]
SLOW = 600  # seconds for one emulated request

pytestmark = pytest.mark.skipif(
    not SIM_BIN.is_file(), reason=f"{SIM_BIN} not built (CMake RAGD_CUDASIM=OFF, or no nvcc)")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    assert os.path.isfile(os.path.join(EMBED_DIR, "config.json")) and os.path.isfile(GEN_FILE), "run `make models`"
    s = RagdServer(tmp_path_factory.mktemp("cudasim") / "data", binary=SIM_BIN, ready_timeout=180, start=False,
                   extra_args=("--device", "cuda", "--embed-model", EMBED_DIR, "--gen-model", GEN_FILE),
                   env={"OPENBLAS_NUM_THREADS": "1", "CUDASIM_GEMM_COLUMNS": "1000000"})
    i = s.extra_args.index("--rerank-model")  # conftest's "none": the default reranker instead
    del s.extra_args[i:i + 2]
    s.start()
    yield s
    s.stop()


def metric(server, name):
    vals = metric_values(server.metrics().text, name)
    return vals[0][1] if vals else None


def run_all(fns):
    """Runs the callables on threads at once; returns their results in order."""
    out, errors = [None] * len(fns), []

    def call(i):
        try:
            out[i] = fns[i]()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append((i, repr(exc)))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SLOW)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a request did not finish"
    return out


def test_every_model_runs_on_cuda(sim):
    v = sim.get_json("/v1/version")
    assert v["cuda"]["devices"] == 1 and "cudasim" in v["cuda"]["description"]
    for part in ("embedding", "ranking", "generation"):
        assert v[part]["device"] == "cuda", v
        assert "cudasim" in v[part]["device_description"], v
    # the generator keeps the GGUF's Q4_1 / Q8_0 blocks on the device; the
    # reranker's f32 decoder fp32 copies
    gen = v["generation"]["device_description"]
    assert "Q4_1, Q8_0 blocks" in gen and "graphs on" in gen, gen
    assert "fp32" in v["ranking"]["device_description"]


def test_concurrent_embeddings_match_golden(sim):
    cases = [g for g in EMB_GOLDEN if g["text"].strip()][:24]
    groups = [cases[i::4] for i in range(4)]  # four requests at once, mixed lengths in each

    def post(group):
        return lambda: expect_json(sim.post("/v1/embeddings", timeout=SLOW, json={
            "model": "all-MiniLM-L6-v2", "input": [g["text"] for g in group], "encoding_format": "float"}))

    for group, body in zip(groups, run_all([post(g) for g in groups])):
        assert [d["index"] for d in body["data"]] == list(range(len(group)))
        for g, d in zip(group, body["data"]):
            assert cosine(d["embedding"], g["embedding"]) >= 0.999, g["text"][:60]
        assert body["usage"]["prompt_tokens"] == sum(g["tokens"] for g in group)


def test_dense_retrieval_with_cuda_vectors(sim):
    facts = {
        "volcano.txt": "Mount Etna is an active stratovolcano on the east coast of Sicily.",
        "bread.txt": "Sourdough bread rises because of wild yeast and lactic acid bacteria.",
        "orbit.txt": "The International Space Station circles the Earth about every ninety minutes.",
    }
    sim.ingest(list(facts.items()), collection="sim", timeout=SLOW)
    hits = sim.hits("Which Italian mountain erupts?", collection="sim", mode="dense", top_k=3)
    assert hits and hits[0]["text"].startswith("Mount Etna"), hits
    hits = sim.hits("how long does one trip around the planet take for the space lab", collection="sim",
                    mode="dense", top_k=3)
    assert hits[0]["text"].startswith("The International Space Station"), hits


def test_concurrent_rankings_give_transformers_scores(sim):
    """Two /v1/ranking requests at once (short groups 0 and 1 of the
    fixture, 6 passages each), each scored as transformers scores it."""
    chosen = [GROUPS[0], GROUPS[1]]
    assert all(len(group) == 6 for group in chosen)

    def rank(group):
        body = {"model": RERANK_NAME, "query": {"text": group[0]["query"]},
                "passages": [{"text": g["passage"]} for g in group], "truncate": "END"}
        return lambda: expect_json(sim.post("/v1/ranking", timeout=SLOW, json=body))["rankings"]

    for group, got in zip(chosen, run_all([rank(g) for g in chosen])):
        assert sorted(r["index"] for r in got) == list(range(6))
        for r in got:
            assert abs(r["logit"] - group[r["index"]]["hf_score"]) < HF_TOL, (r, group[r["index"]]["hf_score"])
        assert_golden_order([r["index"] for r in got], group)


# six of test_completions' questions, with six different answers
QUESTIONS = [QUESTIONS_ALL[i] for i in (0, 1, 2, 5, 6, 10)]
MAX_TOKENS = 10


def stream_text(client, question, max_tokens):
    chunks = list(client.chat.completions.create(
        model=GEN_NAME, messages=[{"role": "user", "content": question}], stream=True, temperature=0,
        max_tokens=max_tokens))
    assert chunks and chunks[-1].choices[0].finish_reason in ("stop", "length")
    return "".join(c.choices[0].delta.content or "" for c in chunks)


def test_streams_decoded_together_match_alone(sim):
    client = OpenAI(base_url=sim.url + "/v1", api_key="unused", max_retries=0, timeout=SLOW)
    alone = [client.chat.completions.create(
        model=GEN_NAME, messages=[{"role": "user", "content": q}], temperature=0,
        max_tokens=MAX_TOKENS).choices[0].message.content for q in QUESTIONS]
    assert all(a.strip() for a in alone)
    assert len(set(alone)) == len(alone)  # six answers, so a mix-up would show
    steps = metric(sim, "ragd_generator_steps_total")
    # different lengths, so sequences leave the batch (and its graphs) at
    # different steps
    lengths = [MAX_TOKENS - (i % 3) for i in range(len(QUESTIONS))]
    together = run_all([lambda q=q, n=n: stream_text(client, q, n) for q, n in zip(QUESTIONS, lengths)])
    # decoded together: far fewer steps than one sequence after another
    assert metric(sim, "ragd_generator_steps_total") - steps < 3 * MAX_TOKENS  # alone: 6 * (MAX_TOKENS + 1)
    for q, n, a, t in zip(QUESTIONS, lengths, alone, together):
        short = client.chat.completions.create(
            model=GEN_NAME, messages=[{"role": "user", "content": q}], temperature=0,
            max_tokens=n).choices[0].message.content if n != MAX_TOKENS else a
        assert t == short, (q, t, short)


def test_hang_up_mid_stream_leaves_the_others(sim):
    cancelled = metric(sim, "ragd_generator_cancelled_total")
    client = OpenAI(base_url=sim.url + "/v1", api_key="unused", max_retries=0, timeout=SLOW)
    want = client.chat.completions.create(
        model=GEN_NAME, messages=[{"role": "user", "content": QUESTIONS[1]}], temperature=0,
        max_tokens=MAX_TOKENS).choices[0].message.content

    def hang_up():
        # a long answer, so the server is still writing when it notices
        essay = "Write a long essay, with many paragraphs, on the history of the Roman Empire."
        body = {"model": GEN_NAME, "messages": [{"role": "user", "content": essay}], "stream": True,
                "max_tokens": 400, "temperature": 0}
        with requests.post(sim.url + "/v1/chat/completions", json=body, stream=True, timeout=SLOW) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith(b"data: {"):
                    return "hung up"  # after the first chunk: the context manager closes the socket
        return "ended"

    got = run_all([hang_up, lambda: stream_text(client, QUESTIONS[1], MAX_TOKENS)])
    assert got == ["hung up", want]
    deadline = time.monotonic() + SLOW
    while metric(sim, "ragd_generator_cancelled_total") < cancelled + 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric(sim, "ragd_generator_cancelled_total") == cancelled + 1
    while metric(sim, "ragd_generator_sequences") != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric(sim, "ragd_generator_sequences") == 0 and metric(sim, "ragd_generator_kv_tokens") == 0


def test_kv_cache_beyond_the_gpu_is_refused_at_start(tmp_path):
    """The sequences' caches are allocated on the GPU as requests come; a
    --kv-cache-mb the device cannot hold (cudasim's has 16 GiB) is a
    start-up error naming the sizes, not failed requests later."""
    with pytest.raises(ServerStartError) as exc:
        RagdServer(tmp_path / "big", binary=SIM_BIN, ready_timeout=180,
                   extra_args=("--device", "cuda", "--gen-model", GEN_FILE, "--kv-cache-mb", "20000"))
    msg = str(exc.value)
    assert "KV cache of 20000 MiB does not fit on the GPU" in msg and "--kv-cache-mb" in msg, msg
    s = RagdServer(tmp_path / "fits", binary=SIM_BIN, ready_timeout=180,
                   extra_args=("--device", "cuda", "--gen-model", GEN_FILE, "--kv-cache-mb", "4096"))
    try:
        assert s.get_json("/v1/version")["generation"]["device"] == "cuda"
    finally:
        s.stop()
