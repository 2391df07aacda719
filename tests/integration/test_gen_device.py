"""--device cpu|cuda|auto (and RAGD_DEVICE) for the generator: what runs
the decoder, as /v1/version reports it, for `ragd serve` and `ragd chat`.
On a machine without a usable GPU, cuda is a clear start-up error and auto
falls back to the CPU; with one, both run on CUDA."""
import os
from pathlib import Path

import pytest

from conftest import RagdServer, ServerStartError, run_cli

REPO = Path(__file__).resolve().parents[2]
GEN_MODEL = (Path(os.environ.get("RAGD_MODELS", str(REPO / "models")))
             / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf")
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def gen_model():
    assert GEN_MODEL.exists(), f"no generator model at {GEN_MODEL}: run `make models`"
    return str(GEN_MODEL)


def version_of(data_dir, args=(), env=None):
    s = RagdServer(data_dir, list(args), env=env)
    try:
        return s.get_json("/v1/version")
    finally:
        s.stop()


def test_serve_says_where_the_generator_runs(tmp_path, gen_model):
    probe = version_of(tmp_path / "probe")
    assert "generation" not in probe  # --gen-model none: nothing to report
    gpu = probe["cuda"]["devices"] > 0
    v = version_of(tmp_path / "auto", ["--gen-model", gen_model, "--device", "auto"])
    g = v["generation"]
    assert g["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert g["device"] == ("cuda" if gpu else "cpu"), (v, probe["cuda"])
    assert g["device_description"]
    v = version_of(tmp_path / "cpu", ["--gen-model", gen_model, "--device", "cpu"])
    assert v["generation"]["device"] == "cpu" and "threads" in v["generation"]["device_description"]
    # RAGD_DEVICE is the flag's default
    v = version_of(tmp_path / "env", ["--gen-model", gen_model], env={"RAGD_DEVICE": "cpu"})
    assert v["generation"]["device"] == "cpu"


def test_cuda_generator_without_a_gpu_is_a_clear_error(tmp_path, gen_model):
    gpu = version_of(tmp_path / "probe")["cuda"]["devices"] > 0
    if gpu:
        v = version_of(tmp_path / "cuda", ["--gen-model", gen_model, "--device", "cuda"])
        assert v["generation"]["device"] == "cuda"
        return
    with pytest.raises(ServerStartError) as exc:
        RagdServer(tmp_path / "cuda", ["--gen-model", gen_model, "--device", "cuda"])
    msg = str(exc.value)
    assert "generation model" in msg and "device cuda is not available" in msg, msg


def test_chat_takes_the_device(tmp_path, gen_model):
    args = ["chat", QUESTION, "--gen-model", gen_model, "--temperature", "0", "--max-tokens", "8"]
    cpu = run_cli(args + ["--device", "cpu"], check=0)
    assert cpu.stdout.strip(), cpu.stderr
    p = run_cli(args + ["--device", "gpu"], check=2)
    assert "unknown device" in p.stderr
    p = run_cli(args, env={"RAGD_DEVICE": "tpu"}, check=2)
    assert "RAGD_DEVICE" in p.stderr
    gpu = version_of(tmp_path / "probe")["cuda"]["devices"] > 0
    p = run_cli(args + ["--device", "cuda"])
    if gpu:  # an answer from the GPU (token-level agreement is test_decoder_cuda's job)
        assert p.returncode == 0 and p.stdout.strip(), p.stderr
    else:
        assert p.returncode == 1 and "device cuda is not available" in p.stderr, p.stderr


def test_serve_says_where_the_lm_reranker_runs(tmp_path, gen_model):
    """The causal-LM reranker runs on its own decoder, placed by --device
    like the generator's: /v1/version reports it under "ranking"."""
    probe = version_of(tmp_path / "probe")
    assert "ranking" not in probe  # --rerank-model none
    gpu = probe["cuda"]["devices"] > 0
    v = version_of(tmp_path / "auto", ["--rerank-model", gen_model, "--device", "auto"])
    r = v["ranking"]
    assert r["model"] == "SmolLM2-135M-Instruct.Q4_1-rerank" and r["method"] == "causal-lm", r
    assert r["device"] == ("cuda" if gpu else "cpu"), (v, probe["cuda"])
    v = version_of(tmp_path / "cpu", ["--rerank-model", gen_model, "--device", "cpu"])
    assert v["ranking"]["device"] == "cpu" and "threads" in v["ranking"]["device_description"]
    if not gpu:
        with pytest.raises(ServerStartError) as exc:
            RagdServer(tmp_path / "cuda", ["--rerank-model", gen_model, "--device", "cuda"])
        assert "device cuda is not available" in str(exc.value), str(exc.value)
