"""--device cpu|cuda|auto (and RAGD_DEVICE): what runs the embedding model,
as /v1/version reports it. On a machine without a usable GPU, cuda is a
clear start-up error and auto falls back to the CPU; with one, both run on
CUDA."""
import os
from pathlib import Path

import pytest

from conftest import RagdServer, ServerStartError, run_cli

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(os.environ.get("RAGD_MODELS", str(REPO / "models"))) / "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def model():
    assert (MODEL_DIR / "config.json").exists(), f"no model at {MODEL_DIR}: run `make models`"
    return str(MODEL_DIR)


def serving(data_dir, args=(), env=None):
    """A started server that the caller stops (try/finally)."""
    return RagdServer(data_dir, list(args), env=env)


def version_of(data_dir, args=(), env=None):
    s = serving(data_dir, args, env)
    try:
        return s.get_json("/v1/version")
    finally:
        s.stop()


def has_gpu(tmp_path):
    cuda = version_of(tmp_path / "probe")["cuda"]
    return cuda["devices"] > 0, cuda


def test_unknown_device_is_refused(tmp_path, model):
    p = run_cli(["search", "anything", "--device", "gpu", "--embed-model", model], data_dir=tmp_path, check=2)
    assert "unknown device" in p.stderr and "cpu, cuda or auto" in p.stderr
    p = run_cli(["search", "anything"], data_dir=tmp_path, env={"RAGD_DEVICE": "tpu"}, check=2)
    assert "RAGD_DEVICE" in p.stderr and "tpu" in p.stderr


def test_auto_runs_where_it_can_and_says_so(tmp_path, model):
    gpu, cuda = has_gpu(tmp_path)
    s = serving(tmp_path / "auto", ["--embed-model", model, "--device", "auto"])
    try:
        v = s.get_json("/v1/version")
        assert v["embedding"]["model"] == "all-MiniLM-L6-v2"
        assert v["embedding"]["device"] == ("cuda" if gpu else "cpu"), (v, cuda)
        assert v["embedding"]["device_description"]
        r = s.post_json("/v1/embeddings", {"input": ["which device embeds this?"], "model": "all-MiniLM-L6-v2"})
        vec = r["data"][0]["embedding"]
        assert len(vec) == 384 and abs(sum(x * x for x in vec) - 1.0) < 1e-3
    finally:
        s.stop()


def test_cpu_is_honoured(tmp_path, model):
    v = version_of(tmp_path / "cpu", ["--embed-model", model, "--device", "cpu"])
    assert v["embedding"]["device"] == "cpu"
    # RAGD_DEVICE is the default for the flag.
    v = version_of(tmp_path / "env", ["--embed-model", model], env={"RAGD_DEVICE": "cpu"})
    assert v["embedding"]["device"] == "cpu"


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, model):
    gpu, cuda = has_gpu(tmp_path)
    if gpu:
        v = version_of(tmp_path / "cuda", ["--embed-model", model, "--device", "cuda"])
        assert v["embedding"]["device"] == "cuda"
        return
    with pytest.raises(ServerStartError) as exc:
        RagdServer(tmp_path / "cuda", ["--embed-model", model, "--device", "cuda"])
    msg = str(exc.value)
    assert "device cuda is not available" in msg, msg
    assert "no CUDA device" in msg or "not compiled in" in msg, msg
    # The CLI commands that load the model say the same and fail.
    doc = tmp_path / "doc.txt"
    doc.write_text("A document about graphics processors.\n")
    p = run_cli(["ingest", doc, "--embed-model", model, "--device", "cuda"], data_dir=tmp_path / "cli", check=1)
    assert "device cuda is not available" in p.stderr
