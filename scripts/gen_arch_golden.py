#!/usr/bin/env python3
"""Writes tests/fixtures/arch/: small random-weight Hugging Face decoders, one
per architecture feature ragd claims (Qwen2's QKV biases, Qwen3's per-head
Q/K norms, Llama 3 and linear RoPE scaling, grouped-query attention, an
explicit head size wider than hidden/heads, untied outputs, F16/BF16
storage (F32 is test_decoder's own directory), configs in both the legacy
and transformers 5 layouts), and tests/fixtures/arch_golden.jsonl:
what transformers computes from each directory in float32 with eager
attention. tests/unit/test_decoder_arch.c loads every directory with ragd and
requires the same logits and greedy tokens.

Why random weights: the machines that run the tests hold one real decoder
(SmolLM2, Llama architecture, no bias, no scaling), so the other paths would
otherwise never meet their reference. The weights are drawn from numpy's
PCG64 with a fixed seed (not torch's generator, so the directories do not
depend on the torch version) and scaled so that attention is sharp and every
feature moves the logits: for each model the fixture records how far the
logits move when the feature is taken away ("mutations", computed here by
transformers), and the test demands that this be far above its bound.

Usage: scripts/gen_arch_golden.py
  Re-runs itself in the virtualenv of scripts/gen_hf_decoder_golden.py
  (torch, transformers, gguf; $RAGD_HFDECREF_VENV, else build/hfdecref-venv).
  Needed only to regenerate the fixture, never by `make test`.

Each line of the golden file is one prompt of one model:
  model         the directory under tests/fixtures/arch/;
  sha256        of that directory's model.safetensors and config.json;
  ids           the prompt's token ids (random, no tokenizer involved);
  logits_f32    the last prompt position's logits, little-endian float32 in
                base64;
  f64_rel       how far float64 moves them: the scale of float32 rounding;
  greedy        8 greedy tokens (argmax, lowest id on a tie), each fed back
                through the KV cache;
  step_top2     per step [id1, logit1, id2, logit2];
  mutations     {name: relative change of logits_f32 when that feature is
                removed}, for the longest prompt of each model only.
"""
import base64
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_hf_decoder_golden as hfgold  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARCH_DIR = REPO / "tests" / "fixtures" / "arch"
OUT = REPO / "tests" / "fixtures" / "arch_golden.jsonl"
N_GREEDY = 8
PROMPT_LENS = (1, 9, 70)

# name: (class, config, storage dtype, config layout, feature mutations)
# "legacy": config.json written as published checkpoints have it (rope_theta,
# rope_scaling); "v5": as transformers 5's save_pretrained writes it.
BASE = dict(vocab_size=160, hidden_size=64, num_hidden_layers=2, intermediate_size=96,
            max_position_embeddings=256, rms_norm_eps=1e-5, hidden_act="silu")
MODELS = {
    "llama_gqa_untied": ("LlamaForCausalLM", dict(BASE, model_type="llama", num_attention_heads=4,
                                                  num_key_value_heads=2, rope_theta=10000.0,
                                                  tie_word_embeddings=False),
                         "F16", "legacy", ("rope_theta_x2", "tied_output")),
    "llama3_scaled": ("LlamaForCausalLM", dict(BASE, model_type="llama", num_attention_heads=4, num_key_value_heads=1,
                                               rope_theta=500000.0, tie_word_embeddings=True,
                                               rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                             "original_max_position_embeddings": 32}),
                      "BF16", "legacy", ("no_rope_scaling",)),
    "llama_linear_v5": ("LlamaForCausalLM", dict(BASE, model_type="llama", num_attention_heads=4,
                                                 num_key_value_heads=4, rope_theta=10000.0, tie_word_embeddings=True,
                                                 rope_scaling={"rope_type": "linear", "factor": 4.0}),
                        "F16", "v5", ("no_rope_scaling",)),
    "qwen2_bias": ("Qwen2ForCausalLM", dict(BASE, model_type="qwen2", num_attention_heads=4, num_key_value_heads=2,
                                            rope_theta=1000000.0, tie_word_embeddings=True),
                   "BF16", "legacy", ("no_qkv_bias",)),
    "qwen2_bias_v5": ("Qwen2ForCausalLM", dict(BASE, model_type="qwen2", num_attention_heads=4, num_key_value_heads=1,
                                               rope_theta=1000000.0, tie_word_embeddings=False),
                      "F16", "v5", ("no_qkv_bias", "rope_theta_x2")),
    "qwen3_qk_norm": ("Qwen3ForCausalLM", dict(BASE, model_type="qwen3", num_attention_heads=4, num_key_value_heads=2,
                                               head_dim=32, rope_theta=1000000.0, tie_word_embeddings=True,
                                               attention_bias=False, use_sliding_window=False),
                      "BF16", "legacy", ("no_qk_norm",)),
    "mistral_head_dim": ("MistralForCausalLM", dict(BASE, model_type="mistral", num_attention_heads=4,
                                                    num_key_value_heads=2, head_dim=32, rope_theta=1000000.0,
                                                    tie_word_embeddings=False, sliding_window=None),
                         "BF16", "legacy", ("rope_theta_x2",)),
}


def draw_weights(model, seed):
    """Every parameter from PCG64: matrices N(0, g/sqrt(fan_in)) with g = 1.5
    for Q and K (scores of std ~2: sharp attention, so RoPE and the head
    mapping matter), norms 1 + N(0, 0.2), biases N(0, 0.5), embeddings
    N(0, 0.15): small beside what the layers add to the residual stream, or a
    tied output would simply repeat the last token, whose own embedding
    would dominate the final state."""
    import numpy as np
    import torch

    rng = np.random.Generator(np.random.PCG64(seed))
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            shape = tuple(p.shape)
            if name.endswith("norm.weight"):
                a = 1 + 0.2 * rng.standard_normal(shape)
            elif name.endswith(".bias"):
                a = 0.5 * rng.standard_normal(shape)
            elif "embed_tokens" in name:
                a = 0.15 * rng.standard_normal(shape)
            else:
                g = 1.5 if ("q_proj" in name or "k_proj" in name) else 1.0
                a = g / np.sqrt(shape[1]) * rng.standard_normal(shape)
            p.copy_(torch.from_numpy(a.astype(np.float32)))


def legacy_config(cls, cfg):
    """config.json as checkpoints on the Hub write it (rope_theta and
    rope_scaling at the top level; transformers 5 still reads it)."""
    out = {"architectures": [cls], "torch_dtype": "float32"}
    out.update({k: v for k, v in cfg.items() if v is not None or k == "sliding_window"})
    return json.dumps(out, indent=2, sort_keys=True) + "\n"


def build(name):
    import torch
    import transformers
    from safetensors.torch import save_file

    cls_name, cfg, dtype, layout, _ = MODELS[name]
    cls = getattr(transformers, cls_name)
    config = transformers.AutoConfig.for_model(**cfg)
    torch.manual_seed(0)
    model = cls(config).to(torch.float32)
    draw_weights(model, seed=int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little"))
    d = ARCH_DIR / name
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    tdtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    if layout == "v5":
        model.to(tdtype).save_pretrained(str(d), safe_serialization=True)
        model.to(torch.float32)
        for f in d.iterdir():  # keep the two files ragd and the test read
            if f.name not in ("config.json", "model.safetensors"):
                f.unlink()
    else:
        sd = {k: v.to(tdtype).contiguous() for k, v in model.state_dict().items()}
        if cfg.get("tie_word_embeddings"):
            sd.pop("lm_head.weight", None)
        save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
        (d / "config.json").write_text(legacy_config(cls_name, cfg), encoding="ascii")
    return d


def load(name, d, **overrides):
    """The model as transformers reads it from d (float32, eager), with
    config overrides for a mutation; refuses a directory read other than
    intended (missing or unexpected tensors)."""
    import torch
    import transformers

    cls = getattr(transformers, MODELS[name][0])
    kw = {}
    if overrides:
        config = transformers.AutoConfig.from_pretrained(str(d))
        for k, v in overrides.items():
            setattr(config, k, v)
        kw["config"] = config
    model, info = cls.from_pretrained(str(d), dtype=torch.float32, attn_implementation="eager",
                                      output_loading_info=True, **kw)
    model.eval()
    tied = MODELS[name][1].get("tie_word_embeddings")
    missing = [k for k in info.get("missing_keys", []) if not (tied and k == "lm_head.weight")]
    bad = {k: v for k, v in info.items() if v and k != "missing_keys"}
    if (bad or missing) and not overrides:
        sys.exit(f"{name}: transformers did not load the directory cleanly: {info}")
    return model


def mutated(name, d, what):
    """transformers' model of d with one feature taken away: RoPE changes
    through an edited legacy config.json beside a link to the weights (the
    config's RoPE fields differ between transformers versions; the legacy
    ones are read by all), weight changes in place."""
    import tempfile

    import torch

    cls_name, cfg, _, _, _ = MODELS[name]
    if what in ("rope_theta_x2", "no_rope_scaling"):
        edited = dict(cfg)
        if what == "rope_theta_x2":
            edited["rope_theta"] = 2 * cfg["rope_theta"]
        else:
            edited.pop("rope_scaling")
        tmp = Path(tempfile.mkdtemp())
        (tmp / "model.safetensors").symlink_to(d / "model.safetensors")
        (tmp / "config.json").write_text(legacy_config(cls_name, edited), encoding="ascii")
        return load(name, tmp)
    m = load(name, d)
    with torch.no_grad():
        if what == "tied_output":
            m.lm_head.weight.copy_(m.model.embed_tokens.weight)
        elif what == "no_qk_norm":
            for layer in m.model.layers:
                layer.self_attn.q_norm = torch.nn.Identity()
                layer.self_attn.k_norm = torch.nn.Identity()
        elif what == "no_qkv_bias":
            for layer in m.model.layers:
                for p in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    p.bias.zero_()
        else:
            raise ValueError(what)
    return m


def last_logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].double().numpy()


def greedy(model, ids):
    """N_GREEDY greedy steps through the KV cache: tokens, top-2 per step."""
    import numpy as np
    import torch

    toks, tops = [], []
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
        for _ in range(N_GREEDY):
            v = out.logits[0, -1].float().numpy()
            t = hfgold.top2(v)
            tops.append(t)
            toks.append(t[0])
            out = model(torch.tensor([[t[0]]]), past_key_values=out.past_key_values, use_cache=True)
    assert all(isinstance(x, int) for x in toks) and np.isfinite([x[1] for x in tops]).all()
    return toks, tops


def rel(a, b):
    import numpy as np

    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    hfgold.ensure_stack(__file__)
    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(1)
    lines = []
    for name in MODELS:
        d = build(name)
        sha = {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in ("model.safetensors", "config.json")}
        model = load(name, d)
        model64 = load(name, d).double()
        rng = np.random.Generator(np.random.PCG64(7))
        vocab = MODELS[name][1]["vocab_size"]
        for n in PROMPT_LENS:
            ids = [int(x) for x in rng.integers(0, vocab, n)]
            ref = last_logits(model, ids)
            toks, tops = greedy(model, ids)
            rec = {"model": name, "sha256": sha, "ids": ids,
                   "logits_f32": base64.b64encode(ref.astype("<f4").tobytes()).decode("ascii"),
                   "f64_rel": rel(ref, last_logits(model64, ids)), "greedy": toks, "step_top2": tops}
            if n == PROMPT_LENS[-1]:
                rec["mutations"] = {m: rel(last_logits(mutated(name, d, m), ids), ref) for m in MODELS[name][4]}
            lines.append(json.dumps(rec))
            print(f"{name}: {n} tokens, f64 {rec['f64_rel']:.2e}, greedy {toks}, {rec.get('mutations', '')}")
    meta = {"meta": {"torch": torch.__version__, "transformers": transformers.__version__, "n_greedy": N_GREEDY}}
    OUT.write_text("\n".join([json.dumps(meta)] + lines) + "\n", encoding="ascii")
    print(f"wrote {OUT} ({len(lines)} prompts) and {len(MODELS)} directories under {ARCH_DIR}")


if __name__ == "__main__":
    main()
