#!/usr/bin/env python3
"""Copies a Hugging Face BERT model directory with model.safetensors made
smaller, so the default embedding model (87 MiB in f32) fits, compressed,
in what a GPU call may carry (64 MiB with the repository and libraries):

  - the weight matrices of the linear layers (2-D tensors named
    encoder.layer.*.weight) become float16, rounded to nearest-even: the
    CUDA encoder rounds exactly these matrices to fp16 the same way at
    upload (model/quant's f32_to_fp16, subnormals included), so the GPU
    computes from them bit for bit what it computes from the f32 file;
  - the other 2-D float32 tensors (the embedding tables, 12 MiB of the 87)
    become float16 too, refusing any value beyond float16's range (65504):
    the one difference from the f32 file on the GPU, which keeps them in
    fp32 (each value moved by at most 2^-11 of itself);
  - 1-D tensors (biases, layer norms: a few KiB) stay float32.

(Until session 5 the matrices were bfloat16, which compresses better, when
the CUDA encoder's products were bf16; with its products in fp16 a bf16
copy would no longer give the GPU the f32 file's function.)

Tokenizer and config files are copied as they are. ragd reads F16 and BF16
safetensors directly. The CPU encoder sees the rounded weights too, so the
CPU tests written for the f32 file (test_encoder's cosine >= 0.9999,
test_cross_encoder's 1e-3) may land a little lower with this copy; the CUDA
bounds are 0.999 and 2e-2.

Usage: half_model.py SRC_DIR DEST_DIR   (standard library only)
"""
import array
import json
import os
import shutil
import struct
import sys

KEEP = ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json", "vocab.txt",
        "tokenizer_config.json", "special_tokens_map.json", "config_sentence_transformers.json")


def convert(src, dst):
    with open(src, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        if hlen > 100 << 20:
            raise SystemExit(f"{src}: header of {hlen} bytes")
        header = json.loads(f.read(hlen))
        base = 8 + hlen
        out_header, chunks, off = {}, [], 0
        for name, info in header.items():
            if name == "__metadata__":
                out_header[name] = info
                continue
            b, e = info["data_offsets"]
            f.seek(base + b)
            raw = f.read(e - b)
            if len(raw) != e - b:
                raise SystemExit(f"{src}: {name} is truncated")
            dtype = info["dtype"]
            if dtype == "F32" and len(info["shape"]) >= 2:  # matrices and embedding tables
                vals = array.array("f")
                vals.frombytes(raw)
                if sys.byteorder != "little":
                    vals.byteswap()
                big = max((abs(v) for v in vals), default=0.0)
                if not big <= 65504.0:
                    raise SystemExit(f"{src}: {name} has |x| = {big}, beyond float16")
                raw = struct.pack(f"<{len(vals)}e", *vals)
                dtype = "F16"
            out_header[name] = {"dtype": dtype, "shape": info["shape"], "data_offsets": [off, off + len(raw)]}
            chunks.append(raw)
            off += len(raw)
    h = json.dumps(out_header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as o:
        o.write(struct.pack("<Q", len(h)))
        o.write(h)
        for c in chunks:
            o.write(c)
    os.replace(tmp, dst)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    for name in KEEP:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
    for d in sorted(os.listdir(src)):  # the Pooling module's directory
        if os.path.isfile(os.path.join(src, d, "config.json")) and d[0].isdigit():
            os.makedirs(os.path.join(dst, d), exist_ok=True)
            shutil.copy2(os.path.join(src, d, "config.json"), os.path.join(dst, d, "config.json"))
    convert(os.path.join(src, "model.safetensors"), os.path.join(dst, "model.safetensors"))
    print(f"{dst}: {os.path.getsize(os.path.join(dst, 'model.safetensors')) / 2**20:.1f} MiB of weights")


if __name__ == "__main__":
    main()
