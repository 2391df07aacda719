#!/usr/bin/env python3
"""Rewrites a Llama-family GGUF with its weight matrices in another type,
for benchmarks and comparisons in formats no registry package ships (the
default model installs as Q4_1 only):

    scripts/requant_gguf.py SRC.gguf DST.gguf TYPE      TYPE: F16, BF16, F32, Q8_0

Every 2-D tensor is dequantized by gguf-py (bit for bit what ragd's
model/quant reads) and written as TYPE (F16/BF16 rounded to nearest even;
Q8_0 by gguf-py's reference quantizer, as llama.cpp's); 1-D tensors (norms,
biases) stay F32. Metadata is copied as it is, general.file_type set to the
new type's. The result is a different model from the source (requantized
weights), the same one for every program that reads it.

Runs in the virtualenv of scripts/gen_hf_decoder_golden.py (gguf, numpy)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_hf_decoder_golden as hfgold  # noqa: E402

# llama.cpp's LLAMA_FTYPE values for general.file_type
FILE_TYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "BF16": 32}


def copy_field(w, name, field):
    import gguf

    vt = field.types[0]
    if name in ("general.file_type",) or name.startswith("GGUF."):
        return
    if vt == gguf.GGUFValueType.ARRAY:
        w.add_key_value(name, field.contents(), vt, sub_type=field.types[-1])
    else:
        w.add_key_value(name, field.contents(), vt)


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in FILE_TYPES:
        sys.exit(__doc__)
    hfgold.ensure_stack(__file__)
    import gguf
    import numpy as np
    from gguf import GGMLQuantizationType as QT
    from gguf import quants

    src, dst, tname = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch=arch)
    for name, field in r.fields.items():
        if name != "general.architecture":
            copy_field(w, name, field)
    w.add_file_type(FILE_TYPES[tname])
    target = QT[tname]
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed(t.shape))  # ggml lists the fastest dimension first
        a = np.ascontiguousarray(quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        if a.ndim == 1 or target == QT.F32:
            w.add_tensor(t.name, a)
        elif target == QT.F16:
            w.add_tensor(t.name, a.astype(np.float16))
        else:
            w.add_tensor(t.name, quants.quantize(a, target), raw_dtype=target)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {dst}: {len(r.tensors)} tensors, matrices as {tname}")


if __name__ == "__main__":
    main()
