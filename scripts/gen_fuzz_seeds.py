#!/usr/bin/env python3
"""Writes the fuzzers' seed inputs under tests/fuzz/seeds/ (committed).

A fuzzer learns a format's shape from its seeds: a GGUF seed that loads as a
model lets the mutations reach the decoder's and encoder's loaders, the
tokenizers and one forward pass, instead of stopping at the magic number.
The seeds are tiny real-shaped models with deterministic random weights
(they compute nothing meaningful), tokenizer.json files of each supported
kind, chat templates, documents and texts.

    .venv/bin/python scripts/gen_fuzz_seeds.py     # numpy + gguf (the test venv has both)

Each target's seeds go to tests/fuzz/seeds/<target>/; tests/fuzz/README.md
says what each target feeds its input to."""
import json
import os
import struct

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf.quants import quantize

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz", "seeds")
rng = np.random.default_rng(20261126)


def out(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(os.path.join(d, name), mode) as f:
        f.write(data)


def byte_chars():
    """GPT-2's byte-to-unicode table: the 256 single-byte tokens."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return [table[b] for b in range(256)]


MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "Ġ w", "y e", "ye s", "n o"]


def bpe_vocab():
    toks = byte_chars()
    for m in MERGES:
        toks.append(m.replace(" ", ""))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    return toks, specials


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def tensor(w, name, shape, qtype):
    x = (rng.standard_normal(shape) * 0.5).astype(np.float32)
    if name.endswith("norm.weight"):
        x = 1.0 + 0.1 * x
    if qtype == QT.F32:
        w.add_tensor(name, x)
    elif qtype == QT.F16:
        w.add_tensor(name, x.astype(np.float16))
    elif qtype == QT.BF16:
        w.add_tensor(name, quantize(x, QT.BF16), raw_dtype=QT.BF16)
    elif qtype in (QT.Q4_K, QT.Q5_K, QT.Q6_K):
        # no reference quantizer for k-quants here: random blocks whose
        # scales are small fp16 values (the loader and kernels only need a
        # well-formed block)
        bsz, tsz = gguf.GGML_QUANT_SIZES[qtype]
        rows, cols = shape
        raw = rng.integers(0, 256, size=(rows, cols // bsz, tsz), dtype=np.uint8)
        d = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)
        if qtype == QT.Q6_K:
            raw[:, :, tsz - 2:] = d
        else:
            raw[:, :, 0:2] = d
            raw[:, :, 2:4] = d
        w.add_tensor(name, raw.reshape(rows, cols // bsz * tsz), raw_dtype=qtype)
    else:
        w.add_tensor(name, quantize(x, qtype), raw_dtype=qtype)


def llama3_freq_factors(hd, theta, factor=8.0, low=1.0, high=4.0, orig_ctx=64):
    """Llama 3.1's RoPE smoothing as llama.cpp's converter stores it (the
    rope_freqs.weight divisors), for a small original context."""
    out = []
    for i in range(0, hd, 2):
        freq = 1.0 / theta ** (i / hd)
        wavelen = 2 * np.pi / freq
        if wavelen < orig_ctx / high:
            out.append(1.0)
        elif wavelen > orig_ctx / low:
            out.append(factor)
        else:
            smooth = (orig_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def llama_gguf(path_name, arch, spm, n_embd, n_ff, kinds, qkv_bias=False, n_layer=2, n_head_kv=1, theta=10000.0,
               rope_freqs=False, linear_factor=None, qk_norm=False):
    path = os.path.join(ROOT, "gguf", path_name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w = gguf.GGUFWriter(path, arch=arch)
    n_head = 2 if n_head_kv == 1 else 4
    hd = n_embd // n_head
    w.add_uint32(f"{arch}.block_count", n_layer)
    w.add_uint32(f"{arch}.context_length", 1024)
    w.add_uint32(f"{arch}.embedding_length", n_embd)
    w.add_uint32(f"{arch}.feed_forward_length", n_ff)
    w.add_uint32(f"{arch}.attention.head_count", n_head)
    w.add_uint32(f"{arch}.attention.head_count_kv", n_head_kv)
    w.add_float32(f"{arch}.rope.freq_base", theta)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    if linear_factor:
        w.add_string(f"{arch}.rope.scaling.type", "linear")
        w.add_float32(f"{arch}.rope.scaling.factor", linear_factor)
    if spm:
        toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
        types = [2, 3, 3] + [6] * 256
        pieces = ["▁", "▁the", "▁a", "e", "t", "h", "▁t", "he", "in", "er"]
        toks += pieces
        types += [1] * len(pieces)
        scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
        w.add_tokenizer_model("llama")
        w.add_token_list(toks)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_chat_template("{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}")
    else:
        bt, specials = bpe_vocab()
        toks = bt + specials
        types = [1] * len(bt) + [3] * len(specials)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("smollm" if arch == "llama" else "qwen2")
        w.add_token_list(toks)
        w.add_token_types(types)
        w.add_token_merges(MERGES)
        w.add_bos_token_id(len(bt) + 1)
        w.add_eos_token_id(len(bt) + 2)
        w.add_add_bos_token(False)
        w.add_chat_template(CHATML)
    n_vocab = len(toks)
    k = iter(kinds * 20)
    tensor(w, "token_embd.weight", (n_vocab, n_embd), next(k))
    tensor(w, "output_norm.weight", (n_embd,), QT.F32)
    for i in range(n_layer):
        p = f"blk.{i}."
        tensor(w, p + "attn_norm.weight", (n_embd,), QT.F32)
        tensor(w, p + "ffn_norm.weight", (n_embd,), QT.F32)
        tensor(w, p + "attn_q.weight", (n_head * hd, n_embd), next(k))
        tensor(w, p + "attn_k.weight", (n_head_kv * hd, n_embd), next(k))
        tensor(w, p + "attn_v.weight", (n_head_kv * hd, n_embd), next(k))
        if qkv_bias:
            tensor(w, p + "attn_q.bias", (n_head * hd,), QT.F32)
            tensor(w, p + "attn_k.bias", (n_head_kv * hd,), QT.F32)
            tensor(w, p + "attn_v.bias", (n_head_kv * hd,), QT.F32)
        if qk_norm:
            tensor(w, p + "attn_q_norm.weight", (hd,), QT.F32)
            tensor(w, p + "attn_k_norm.weight", (hd,), QT.F32)
        tensor(w, p + "attn_output.weight", (n_embd, n_head * hd), next(k))
        tensor(w, p + "ffn_gate.weight", (n_ff, n_embd), next(k))
        tensor(w, p + "ffn_up.weight", (n_ff, n_embd), next(k))
        tensor(w, p + "ffn_down.weight", (n_embd, n_ff), next(k))
    if arch == "qwen2":
        tensor(w, "output.weight", (n_vocab, n_embd), next(k))
    if rope_freqs:
        w.add_tensor("rope_freqs.weight", llama3_freq_factors(hd, theta))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


BERT_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "▁hello", "▁world", "ing", "▁the", "▁a",
               "s", "t", "e", "▁is", "ed", "▁of"]


def bert_gguf(path_name, rank):
    path = os.path.join(ROOT, "gguf", path_name)
    w = gguf.GGUFWriter(path, arch="bert")
    H, FF, CTX = 32, 64, 32
    w.add_uint32("bert.block_count", 1)
    w.add_uint32("bert.context_length", CTX)
    w.add_uint32("bert.embedding_length", H)
    w.add_uint32("bert.feed_forward_length", FF)
    w.add_uint32("bert.attention.head_count", 2)
    w.add_float32("bert.attention.layer_norm_epsilon", 1e-12)
    w.add_uint32("bert.pooling_type", 4 if rank else 1)
    if rank:
        w.add_array("bert.classifier.output_labels", ["LABEL_0"])
    w.add_uint32("tokenizer.ggml.token_type_count", 2)
    w.add_tokenizer_model("bert")
    w.add_token_list(BERT_TOKENS)
    w.add_token_types([3] * 5 + [1] * (len(BERT_TOKENS) - 5))
    w.add_uint32("tokenizer.ggml.bos_token_id", 2)
    w.add_uint32("tokenizer.ggml.eos_token_id", 3)
    w.add_uint32("tokenizer.ggml.unknown_token_id", 1)
    w.add_uint32("tokenizer.ggml.seperator_token_id", 3)
    w.add_uint32("tokenizer.ggml.padding_token_id", 0)
    if rank:
        tensor(w, "cls.bias", (H,), QT.F32)
        tensor(w, "cls.weight", (H, H), QT.F16)
        tensor(w, "cls.output.bias", (1,), QT.F32)
        tensor(w, "cls.output.weight", (1, H), QT.F32)
    tensor(w, "token_embd_norm.bias", (H,), QT.F32)
    tensor(w, "token_embd_norm.weight", (H,), QT.F32)
    tensor(w, "position_embd.weight", (CTX, H), QT.F32)
    tensor(w, "token_types.weight", (2, H), QT.F32)
    tensor(w, "token_embd.weight", (len(BERT_TOKENS), H), QT.F16)
    p = "blk.0."
    for n, shape, q in [("attn_output_norm.bias", (H,), QT.F32), ("attn_output_norm.weight", (H,), QT.F32),
                        ("attn_output.bias", (H,), QT.F32), ("attn_output.weight", (H, H), QT.Q8_0),
                        ("attn_k.bias", (H,), QT.F32), ("attn_k.weight", (H, H), QT.F16),
                        ("attn_q.bias", (H,), QT.F32), ("attn_q.weight", (H, H), QT.BF16),
                        ("attn_v.bias", (H,), QT.F32), ("attn_v.weight", (H, H), QT.F32),
                        ("ffn_up.bias", (FF,), QT.F32), ("ffn_up.weight", (FF, H), QT.F16),
                        ("layer_output_norm.bias", (H,), QT.F32), ("layer_output_norm.weight", (H,), QT.F32),
                        ("ffn_down.bias", (H,), QT.F32), ("ffn_down.weight", (H, FF), QT.F16)]:
        tensor(w, p + n, shape, q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def safetensors_file(tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, (dtype, arr) in tensors.items():
        b = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def wordpiece_json():
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##ing",
                                         "the", "a", "##s", "caf", "##e", ",", "!", "un", "##aff", "##able"])}
    return json.dumps({
        "version": "1.0",
        "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}
                         for t, i in vocab.items() if t.startswith("[")],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}},
                                    {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                           "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                              "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }, ensure_ascii=False)


def bytelevel_json():
    bt, specials = bpe_vocab()
    vocab = {t: i for i, t in enumerate(bt)}
    added = [{"id": len(bt) + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(specials)]
    split = {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": False}
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": MERGES},
    }, ensure_ascii=False)


def sentencepiece_json():
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁", "▁the", "e", "t", "h", "▁t",
                                                                              "he", "▁a"]
    vocab = {t: i for i, t in enumerate(toks)}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(toks[:3])]
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                           {"type": "Replace", "pattern": {"String": " "},
                                                            "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": ["▁ t", "h e", "▁t he", "▁ a"]},
    }, ensure_ascii=False)


# fuzz_hf_dir.c's file table, in its order
HF_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
            "modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "model.safetensors.index.json",
            "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "special_tokens_map.json",
            "config_sentence_transformers.json"]


def hf_archive(files):
    """fuzz_hf_dir's input: [u8 file index][u32 LE size][bytes] per file."""
    out = b""
    for name, data in files.items():
        if isinstance(data, str):
            data = data.encode()
        out += struct.pack("<BI", HF_FILES.index(name), len(data)) + data
    return out


def f32(shape, norm=False):
    x = (rng.standard_normal(shape) * 0.5).astype(np.float32)
    return 1.0 + 0.1 * x if norm else x


def hf_bert(cross):
    H, FF, CTX = 32, 64, 32
    vocab = json.loads(wordpiece_json())["model"]["vocab"]
    V = len(vocab)
    t = {"embeddings.word_embeddings.weight": ("F32", f32((V, H))),
         "embeddings.position_embeddings.weight": ("F16", f32((CTX, H)).astype(np.float16)),
         "embeddings.token_type_embeddings.weight": ("F32", f32((2, H))),
         "embeddings.LayerNorm.weight": ("F32", f32((H,), True)),
         "embeddings.LayerNorm.bias": ("F32", f32((H,)))}
    p = "encoder.layer.0."
    for n, shape in [("attention.self.query", (H, H)), ("attention.self.key", (H, H)),
                     ("attention.self.value", (H, H)), ("attention.output.dense", (H, H)),
                     ("intermediate.dense", (FF, H)), ("output.dense", (H, FF))]:
        t[p + n + ".weight"] = ("F32", f32(shape))
        t[p + n + ".bias"] = ("F32", f32((shape[0],)))
    for n in ["attention.output.LayerNorm", "output.LayerNorm"]:
        t[p + n + ".weight"] = ("F32", f32((H,), True))
        t[p + n + ".bias"] = ("F32", f32((H,)))
    cfg = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": H, "num_hidden_layers": 1,
           "num_attention_heads": 2, "intermediate_size": FF, "max_position_embeddings": CTX,
           "type_vocab_size": 2, "vocab_size": V, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}
    files = {}
    if cross:
        t = {"bert." + k: v for k, v in t.items()}
        t["bert.pooler.dense.weight"] = ("F32", f32((H, H)))
        t["bert.pooler.dense.bias"] = ("F32", f32((H,)))
        t["classifier.weight"] = ("F32", f32((1, H)))
        t["classifier.bias"] = ("F32", f32((1,)))
        cfg["architectures"] = ["BertForSequenceClassification"]
        cfg["id2label"] = {"0": "LABEL_0"}
    else:
        files["modules.json"] = json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
        files["1_Pooling/config.json"] = json.dumps({"word_embedding_dimension": H, "pooling_mode_cls_token": False,
                                                     "pooling_mode_mean_tokens": True})
        files["sentence_bert_config.json"] = json.dumps({"max_seq_length": 24, "do_lower_case": False})
    files["config.json"] = json.dumps(cfg)
    files["model.safetensors"] = safetensors_file(t)
    files["tokenizer.json"] = wordpiece_json()
    return files


def hf_llama(sharded):
    E, FF, NH, NKV = 64, 128, 2, 1
    hd = E // NH
    bt, specials = bpe_vocab()
    V = len(bt) + len(specials)
    t = {"model.embed_tokens.weight": ("F32", f32((V, E))), "model.norm.weight": ("F32", f32((E,), True))}
    p = "model.layers.0."
    t[p + "input_layernorm.weight"] = ("F32", f32((E,), True))
    t[p + "post_attention_layernorm.weight"] = ("BF16", (f32((E,), True).view(np.uint32) >> 16).astype(np.uint16))
    for n, shape in [("self_attn.q_proj", (NH * hd, E)), ("self_attn.k_proj", (NKV * hd, E)),
                     ("self_attn.v_proj", (NKV * hd, E)), ("self_attn.o_proj", (E, NH * hd)),
                     ("mlp.gate_proj", (FF, E)), ("mlp.up_proj", (FF, E)), ("mlp.down_proj", (E, FF))]:
        t[p + n + ".weight"] = ("F16", f32(shape).astype(np.float16))
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": E, "intermediate_size": FF,
           "num_hidden_layers": 1, "num_attention_heads": NH, "num_key_value_heads": NKV,
           "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": V,
           "tie_word_embeddings": True}
    files = {"config.json": json.dumps(cfg), "tokenizer.json": bytelevel_json(),
             "tokenizer_config.json": json.dumps({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                                                  "chat_template": CHATML, "add_bos_token": False})}
    if sharded:
        names = sorted(t)
        half = {n: t[n] for n in names[: len(names) // 2]}
        rest = {n: t[n] for n in names[len(names) // 2:]}
        files["model-00001-of-00002.safetensors"] = safetensors_file(half)
        files["model-00002-of-00002.safetensors"] = safetensors_file(rest)
        wm = {n: "model-00001-of-00002.safetensors" for n in half}
        wm.update({n: "model-00002-of-00002.safetensors" for n in rest})
        files["model.safetensors.index.json"] = json.dumps({"metadata": {"total_size": 0}, "weight_map": wm})
    else:
        files["model.safetensors"] = safetensors_file(t)
    return files


def main():
    # GGUF: decoders (byte-level BPE, SentencePiece; legacy and k-quant
    # blocks), a BERT embedder and a BERT cross-encoder
    llama_gguf("llama_bpe.gguf", "llama", False, 64, 128,
               [QT.Q8_0, QT.F16, QT.Q4_1, QT.Q4_0, QT.F32, QT.Q5_0, QT.Q5_1, QT.BF16])
    llama_gguf("qwen2_bpe.gguf", "qwen2", False, 64, 128, [QT.F16, QT.Q8_0, QT.Q4_0], qkv_bias=True)
    llama_gguf("llama_spm_kquant.gguf", "llama", True, 256, 256, [QT.Q6_K, QT.Q4_K, QT.Q5_K, QT.Q8_0], n_layer=1)
    bert_gguf("bert_embed.gguf", rank=False)
    bert_gguf("bert_rank.gguf", rank=True)

    x = rng.standard_normal((3, 4)).astype(np.float32)
    out("safetensors", "mixed.safetensors", safetensors_file({
        "a.weight": ("F32", x),
        "b.weight": ("F16", x.astype(np.float16)),
        "c.weight": ("BF16", (x.view(np.uint32) >> 16).astype(np.uint16)),
        "d.bias": ("F32", np.zeros((0,), np.float32)),
    }, meta={"format": "pt"}))
    out("safetensors", "one.safetensors", safetensors_file({"w": ("F32", np.ones((2, 2), np.float32))}))

    out("tokenizer_json", "wordpiece.json", wordpiece_json())
    out("tokenizer_json", "bytelevel.json", bytelevel_json())
    out("tokenizer_json", "sentencepiece.json", sentencepiece_json())

    # response_format JSON schemas, each with a document it allows (the
    # recognizer's walk), NUL between
    cat = {"$defs": {"Colour": {"enum": ["black", "white", 1, 2.5, None, True]},
                     "Node": {"type": "object", "properties": {"id": {"type": "integer"},
                                                              "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
                              "required": ["id"]}},
           "type": "object",
           "properties": {"name": {"type": "string", "title": "Name"}, "age": {"type": ["integer", "null"]},
                          "colour": {"$ref": "#/$defs/Colour"}, "tree": {"$ref": "#/$defs/Node"},
                          "tags": {"type": "object", "additionalProperties": {"type": "number"}},
                          "list": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
                                   "minItems": 1, "maxItems": 3},
                          "opt": {"allOf": [{"type": "string"}], "nullable": True}},
           "required": ["name", "age", "colour", "tree", "tags", "list"], "additionalProperties": False}
    doc = ('{"name": "T\\u00e9 \u00e9 \U0001F41D", "age": null, "colour": 2.5, "tree": {"id": 1, "kids": [{"id": 2}]},'
           ' "tags": {"a": -1e3}, "list": ["x", true], "opt": null}')
    out("json_schema", "cat.bin", json.dumps(cat) + "\0" + doc)
    out("json_schema", "any.bin", "{}\0" + '{"a": [1, {"b": "c"}, null, 1.5e-3], "d": {}}')
    out("json_schema", "map.bin", json.dumps({"type": "object", "additionalProperties": {"type": "integer"}})
        + "\0" + '{"x": 1, "y": -20}')
    # unions whose alternatives start alike (several paths followed at once)
    pets = {"$defs": {"Cat": {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
                              "required": ["kind", "lives"]},
                      "Dog": {"type": "object", "properties": {"kind": {"const": "dog"}, "good": {"type": "boolean"}},
                              "required": ["kind", "good"]}},
            "type": "object",
            "properties": {"pets": {"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"},
                                                                        {"enum": ["none", "many"]}, {"type": "string"}]}},
                           "n": {"type": ["integer", "number", "null"]}},
            "required": ["pets", "n"]}
    out("json_schema", "pets.bin", json.dumps(pets) + "\0"
        + '{"pets": [{"kind": "cat", "lives": 9}, {"kind": "dog", "good": true}, "many", "manx"], "n": 1.5}')

    # configs: a BERT and a Llama config.json (the HF loaders' first read)
    out("config_json", "bert.json", json.dumps({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512,
        "type_vocab_size": 2, "vocab_size": 30522, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}))
    out("config_json", "llama.json", json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
        "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "vocab_size": 49152,
        "tie_word_embeddings": True, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                      "original_max_position_embeddings": 8192}}))
    out("config_json", "qwen2.json", json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
        "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "vocab_size": 151936,
        "tie_word_embeddings": True}))

    # chat templates: template, a NUL byte, then messages "role\x1fcontent" separated by \x1e
    msgs = "system\x1fBe brief.\x1euser\x1fHello <|im_start|> there\x1eassistant\x1fHi!\x1euser\x1fAnd now?"
    for name, tpl in [("chatml", CHATML),
                      ("llama3", "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
                                 "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"),
                      ("llama31", "Cutting Knowledge Date: December 2023 <|start_header_id|>"),
                      ("llama2", "[INST] <<SYS>>\n{{ system }}\n<</SYS>>\n\n"),
                      ("mistral", "{{ bos_token }}[INST] {{ m }} [/INST]"),
                      ("chatml_default_system", "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n"
                                                "You are a helpful AI assistant named SmolLM, trained by Hugging "
                                                "Face<|im_end|>\\n' }}{% endif %}" + CHATML)]:
        out("chat_template", name, tpl + "\0" + msgs)

    # documents: the first byte picks the loader (fuzz_loaders.c)
    out("loaders", "text", "t" + "Title line\n\nA paragraph of plain text. Another sentence here!\n\n"
        "Second paragraph, with caf\u00e9 and \u4e16\u754c.\n")
    out("loaders", "markdown", "m" + "# Heading\n\nSome *text* with a [link](http://x).\n\n## Sub\n\n"
        "- item one\n- item two\n\n```c\nint x;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    out("loaders", "html", "h" + "<!DOCTYPE html><html><head><title>T</title><style>p{}</style></head><body>"
        "<h1>Head</h1><p>Para <b>bold</b> &amp; more</p><ul><li>one</li><li>two</li></ul>"
        "<table><tr><td>1</td><td>2</td></tr></table><script>x()</script></body></html>")
    out("loaders", "xml", "x" + "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY e \"ent\">]><doc><title>X</title>"
        "<sec><p>text &e; here</p><p>more</p></sec></doc>")
    out("loaders", "sniff", "s" + "notes.md\0# Title\n\nbody text\n")

    # Hugging Face directories as fuzz_hf_dir archives
    out("hf_dir", "bert_embed", hf_archive(hf_bert(cross=False)))
    out("hf_dir", "bert_cross", hf_archive(hf_bert(cross=True)))
    out("hf_dir", "llama", hf_archive(hf_llama(sharded=False)))
    out("hf_dir", "llama_sharded", hf_archive(hf_llama(sharded=True)))

    # texts for the default models' tokenizers (fuzz_tokenize.c)
    for i, t in enumerate(["Hello, world! caf\u00e9 na\u00efve \u4e16\u754c \U0001F600",
                           "https://example.com/a?b=c&d=e   def f(x):\n\treturn x**2  # comment",
                           "<|im_start|>user\nhi<|im_end|> 12345 6789 \u00a0\u2003 ll'll 's 've",
                           "supercalifragilisticexpialidocious" * 4]):
        out("tokenize", f"text{i}", t)

    # GGUF decoders with RoPE scaling (Llama 3.1's rope_freqs.weight,
    # linear) and grouped-query attention 4:2: last, so the random draws of
    # every seed above stay as they were
    llama_gguf("llama3_ropefreqs.gguf", "llama", False, 64, 128, [QT.Q8_0, QT.Q4_1, QT.F16, QT.Q5_0],
               n_head_kv=2, theta=500000.0, rope_freqs=True)
    llama_gguf("llama_linear_rope.gguf", "llama", False, 64, 128, [QT.Q4_0, QT.Q5_1, QT.BF16, QT.Q8_0],
               n_layer=1, linear_factor=4.0)
    # Qwen3: per-head Q/K RMSNorm, NEOX, no biases
    llama_gguf("qwen3_bpe.gguf", "qwen3", False, 64, 128, [QT.Q8_0, QT.F16, QT.Q4_0, QT.Q5_1],
               n_head_kv=2, theta=1000000.0, qk_norm=True)


if __name__ == "__main__":
    main()
