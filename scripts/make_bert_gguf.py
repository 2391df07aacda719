#!/usr/bin/env python3
"""Converts a BERT sentence-transformers model directory (config.json,
model.safetensors, tokenizer.json or vocab.txt, modules.json + the Pooling
module's config) into one GGUF file in the layout llama.cpp's converter
(convert_hf_to_gguf.py, class BertModel) writes, so that ragd's GGUF encoder
(model/encoder_gguf.c) can be checked against the directory model on real
weights without torch or transformers.

Usage: scripts/make_bert_gguf.py MODEL_DIR OUT.gguf [--outtype f32|f16]

Layout written (as the converter's):
  metadata  general.architecture "bert", general.type "model", general.name,
            bert.block_count, bert.context_length (max_position_embeddings),
            bert.embedding_length, bert.feed_forward_length,
            bert.attention.head_count, bert.attention.layer_norm_epsilon,
            general.file_type (0 f32, 1 f16), bert.attention.causal false,
            bert.pooling_type (1 mean, 2 cls; only with modules.json),
            general.quantization_version 2, tokenizer.ggml.token_type_count,
            tokenizer.ggml.model "bert", tokenizer.ggml.pre, .tokens (the
            "phantom space" rewriting: "[...]" kept, "##x" -> "x", any other
            "x" -> U+2581 "x"), .token_type (1 normal, 3 control for special
            added tokens, 4 user-defined for other added tokens),
            .bos_token_id = [CLS], .eos_token_id = [SEP], .unknown_token_id,
            .seperator_token_id (sic), .padding_token_id, .mask_token_id,
            .add_bos_token true, .add_eos_token true, .add_sep_token false.
  tensors   token_embd_norm, position_embd, token_types, token_embd, then per
            layer blk.N.attn_output_norm, attn_output, attn_k, attn_q,
            attn_v, ffn_up, layer_output_norm, ffn_down (.bias before
            .weight: the order of the safetensors names, as the converter
            iterates). With --outtype f16, 2-D tensors are F16 except
            position_embd and token_types, which stay F32 with the vectors.
            The converter drops embeddings.position_ids, the pooler and
            cls.predictions / cls.seq_relationship; so does this script.

Checked by hand once against the real converter: llama.cpp's
convert_hf_to_gguf.py from the llama-cpp-python 0.3.16 sdist (run in a
virtualenv with torch, transformers and gguf; the converter also imports
the mistral_common package, used only for Mistral models and not
installable there, so that one run replaced it with an empty module) on
models/all-MiniLM-L6-v2,
with --outtype f32 and f16. The two files agree on every tensor name, its
order, shape (GGUF order) and type (101 tensors; f16: 37 F16, 64 F32), and
the tensor data are bitwise equal; every metadata key outside general.*
agrees in type and value (the token list and token types element for
element), and so do general.architecture, general.type and
general.file_type. Not written: the converter's descriptive general.*
keys read from the model card (name/version/organization/basename/
size_label/license/tags/languages/datasets); general.name here is the
directory name. tokenizer.ggml.pre is "jina-v2-en", the value the converter
derived from this tokenizer's hash; llama.cpp ignores it for WordPiece.

Cross-encoders (config.json architectures ["BertForSequenceClassification"]
with one label in id2label): as the converter, the classifier becomes
cls.output.weight [H, 1] / cls.output.bias [1] (GGUF order) and
bert.classifier.output_labels lists the label names. Two additions that the
converter (llama-cpp-python 0.3.16) does not make, without which the file
cannot give the model's logits: BERT's pooler is kept as cls.weight [H, H] /
cls.bias [H] (llama.cpp's name for the dense + tanh its RANK pooling applies
before cls.output), and bert.pooling_type is 4 (RANK; the converter writes a
pooling type only from a sentence-transformers modules.json). The converter
drops the pooler ("we are only using BERT for embeddings"), so llama.cpp
would apply the classifier to the [CLS] state directly; ragd refuses such a
file (model/cross_encoder_gguf.h). Compared once with the converter's output
for the TEST cross-encoder (scripts/rerank_test_model.py, merged into one
model.safetensors), --outtype f32 and f16: the converter's 103 tensors in
the same order, types (F16: cls.output.weight too), shapes and bitwise data,
plus cls.bias and cls.weight ahead of them (where the pooler's name sorts);
the same metadata but bert.pooling_type (added) and the descriptive
general.name / general.size_label.

A sharded checkpoint (model.safetensors.index.json) is read too.

Needs numpy and the `gguf` package (tests/integration/requirements.txt).
The safetensors file is read by hand (8-byte header length, JSON header,
raw little-endian data).
"""

import argparse
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import gguf

PHANTOM = "\u2581"
ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """name -> float32 numpy array, from a .safetensors file."""
    data = Path(path).read_bytes()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        raw = data[base + b:base + e]
        if dtype == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif dtype in ST_DTYPES:
            arr = np.frombuffer(raw, dtype=np.dtype(ST_DTYPES[dtype]).newbyteorder("<")).astype(np.float32)
        else:
            out[name] = dtype  # not a float tensor: an error unless dropped
            continue
        out[name] = arr.reshape(shape)
    return out


# Hugging Face BERT name -> GGUF name ({bid} is the layer number).
NAME_MAP = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.LayerNorm": "token_embd_norm",
    "encoder.layer.{bid}.attention.self.query": "blk.{bid}.attn_q",
    "encoder.layer.{bid}.attention.self.key": "blk.{bid}.attn_k",
    "encoder.layer.{bid}.attention.self.value": "blk.{bid}.attn_v",
    "encoder.layer.{bid}.attention.output.dense": "blk.{bid}.attn_output",
    "encoder.layer.{bid}.attention.output.LayerNorm": "blk.{bid}.attn_output_norm",
    "encoder.layer.{bid}.intermediate.dense": "blk.{bid}.ffn_up",
    "encoder.layer.{bid}.output.dense": "blk.{bid}.ffn_down",
    "encoder.layer.{bid}.output.LayerNorm": "blk.{bid}.layer_output_norm",
}
DROPPED = ("embeddings.position_ids", "pooler.", "cls.predictions", "cls.seq_relationship")


# Cross-encoder head: the converter's classifier name, and the pooler kept
# under llama.cpp's name for the RANK head's dense + tanh (not the converter's).
HEAD_MAP = {
    "classifier.weight": "cls.output.weight",
    "classifier.bias": "cls.output.bias",
    "pooler.dense.weight": "cls.weight",
    "pooler.dense.bias": "cls.bias",
}


def gguf_name(hf, cross_encoder=False):
    if hf.startswith("bert."):
        hf = hf[5:]
    if hf.endswith(".gamma"):
        hf = hf[:-6] + ".weight"
    if hf.endswith(".beta"):
        hf = hf[:-5] + ".bias"
    if cross_encoder and hf in HEAD_MAP:
        return HEAD_MAP[hf]
    if any(hf.startswith(d) for d in DROPPED):
        return None
    base, _, suffix = hf.rpartition(".")
    m = re.match(r"encoder\.layer\.(\d+)\.(.*)$", base)
    key, bid = (f"encoder.layer.{{bid}}.{m.group(2)}", m.group(1)) if m else (base, None)
    if key not in NAME_MAP:
        sys.exit(f"tensor {hf}: no GGUF name for it (not a plain BERT encoder?)")
    return NAME_MAP[key].replace("{bid}", bid or "") + "." + suffix


def load_vocab(model_dir):
    """Token list (id order) and {id: special?} for the added tokens."""
    tj = model_dir / "tokenizer.json"
    added = {}
    if tj.exists():
        j = json.loads(tj.read_text(encoding="utf-8"))
        if j["model"]["type"] != "WordPiece":
            sys.exit(f"{tj}: not a WordPiece tokenizer")
        vocab = j["model"]["vocab"]
        for a in j.get("added_tokens", []):
            vocab.setdefault(a["content"], a["id"])
            added[a["id"]] = bool(a.get("special"))
        n = max(vocab.values()) + 1
        tokens = [None] * n
        for tok, i in vocab.items():
            tokens[i] = tok
    else:
        tokens = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        for i, t in enumerate(tokens):
            if t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
                added[i] = True
    return tokens, added


def phantom(tok):
    if tok.startswith("[") and tok.endswith("]"):
        return tok
    if tok.startswith("##"):
        return tok[2:]
    return PHANTOM + tok


def pooling_type(model_dir):
    mp = model_dir / "modules.json"
    if not mp.exists():
        return None
    for mod in json.loads(mp.read_text()):
        if mod["type"] == "sentence_transformers.models.Pooling":
            p = json.loads((model_dir / mod["path"] / "config.json").read_text())
            if p.get("pooling_mode_mean_tokens"):
                return gguf.PoolingType.MEAN
            if p.get("pooling_mode_cls_token"):
                return gguf.PoolingType.CLS
            if p.get("pooling_mode_lasttoken"):
                return gguf.PoolingType.LAST
            sys.exit("only MEAN, CLS and LAST pooling are written (as the converter)")
    return None


def read_weights(model_dir):
    """All tensors of model.safetensors or of the shards that
    model.safetensors.index.json names."""
    index = model_dir / "model.safetensors.index.json"
    if not (model_dir / "model.safetensors").exists() and index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        out = {}
        for shard in sorted(set(weight_map.values())):
            # only what the index maps to this shard (a shard may hold more)
            out.update({k: v for k, v in read_safetensors(model_dir / shard).items() if weight_map.get(k) == shard})
        return out
    return read_safetensors(model_dir / "model.safetensors")


def classifier_labels(cfg):
    """The label names of a BertForSequenceClassification config (None for
    other models); exits unless there is exactly one."""
    if cfg.get("architectures") != ["BertForSequenceClassification"]:
        return None
    labels = cfg.get("id2label")
    if not isinstance(labels, dict) or len(labels) != 1:
        sys.exit("a cross-encoder needs exactly one label in config.json id2label")
    return [v for _, v in sorted(labels.items())]


def layer_sort_key(name):
    # safetensors order (sorted names), layer numbers compared as numbers
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--outtype", choices=("f32", "f16"), default="f32")
    a = ap.parse_args()
    d = a.model_dir
    cfg = json.loads((d / "config.json").read_text())
    if cfg.get("model_type") != "bert":
        sys.exit(f"{d}: model_type {cfg.get('model_type')!r} is not bert")

    w = gguf.GGUFWriter(str(a.out), "bert")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(d.resolve().name)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    ftype = gguf.LlamaFileType.ALL_F32 if a.outtype == "f32" else gguf.LlamaFileType.MOSTLY_F16
    w.add_file_type(ftype)
    w.add_causal_attention(False)
    labels = classifier_labels(cfg)
    pt = gguf.PoolingType.RANK if labels else pooling_type(d)
    if pt is not None:
        w.add_pooling_type(pt)
    if labels:
        w.add_classifier_output_labels(labels)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, added = load_vocab(d)
    vocab_size = cfg.get("vocab_size", len(tokens))
    toktypes = []
    full = []
    for i in range(vocab_size):
        t = tokens[i] if i < len(tokens) else None
        if t is None:
            full.append(f"[PAD{i}]")
            toktypes.append(gguf.TokenType.UNUSED)
            continue
        full.append(t)
        if i in added:
            toktypes.append(gguf.TokenType.CONTROL if added[i] else gguf.TokenType.USER_DEFINED)
        else:
            toktypes.append(gguf.TokenType.NORMAL)
    w.add_token_type_count(cfg.get("type_vocab_size", 1))
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("jina-v2-en")
    w.add_token_list([phantom(t) for t in full])
    w.add_token_types(toktypes)
    ids = {t: i for i, t in enumerate(full)}
    stm = d / "special_tokens_map.json"
    smap = json.loads(stm.read_text()) if stm.exists() else {}

    def special(kind, default):
        v = smap.get(kind, default)
        v = v["content"] if isinstance(v, dict) else v
        if v not in ids:
            sys.exit(f"{d}: special token {v!r} not in the vocabulary")
        return ids[v]

    cls_id, sep_id = special("cls_token", "[CLS]"), special("sep_token", "[SEP]")
    w.add_bos_token_id(cls_id)
    w.add_eos_token_id(sep_id)
    w.add_unk_token_id(special("unk_token", "[UNK]"))
    w.add_sep_token_id(sep_id)
    w.add_pad_token_id(special("pad_token", "[PAD]"))
    w.add_mask_token_id(special("mask_token", "[MASK]"))
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)
    w.add_add_sep_token(False)

    tensors = read_weights(d)
    for hf in sorted(tensors, key=layer_sort_key):
        name = gguf_name(hf, cross_encoder=labels is not None)
        if name is None:
            continue
        if isinstance(tensors[hf], str):
            sys.exit(f"tensor {hf} has dtype {tensors[hf]}, not a float type")
        arr = np.ascontiguousarray(tensors[hf], dtype=np.float32)
        keep_f32 = (arr.ndim <= 1 or name.endswith("_norm.weight")
                    or name in ("position_embd.weight", "token_types.weight"))
        if a.outtype == "f16" and not keep_f32:
            arr = arr.astype(np.float16)
        w.add_tensor(name, arr)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
