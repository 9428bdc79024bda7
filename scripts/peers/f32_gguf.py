#!/usr/bin/env python3
"""Rewrite a GGUF file with every tensor dequantized to F32.

    python scripts/peers/f32_gguf.py IN.gguf OUT.gguf

All metadata key/value fields (tokenizer arrays included) are copied with their
original GGUF value types, in their original order; tensor names, order and shapes
are kept; general.file_type is set to 0 (ALL_F32). The output is then read back
and checked field by field and tensor by tensor against the input.
Uses the llama.cpp gguf-py package (PyPI `gguf`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize

VIRTUAL = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")
FILE_TYPE_KEY = "general.file_type"
ALL_F32 = 0


def field_value(field):
    """(value, vtype, sub_type) of a reader field, as GGUFWriter.add_key_value takes them."""
    main = field.types[0]
    if main == GGUFValueType.ARRAY:
        sub = field.types[-1]
        if sub == GGUFValueType.STRING:
            # Raw bytes would be safest, but the writer encodes str; token strings are valid UTF-8 here
            # (checked by the read-back comparison below).
            return field.contents(), main, sub
        return field.contents(), main, sub
    return field.contents(), main, None


def to_f32(t) -> np.ndarray:
    """Dequantized float32 array in numpy (row-major, ggml-reversed) shape."""
    qtype = GGMLQuantizationType(t.tensor_type)
    shape = tuple(int(x) for x in reversed(t.shape.tolist()))  # ggml ne is innermost-first
    if qtype == GGMLQuantizationType.F32:
        arr = np.asarray(t.data, dtype=np.float32)
    else:
        arr = dequantize(t.data, qtype).astype(np.float32, copy=False)
    return np.ascontiguousarray(arr.reshape(shape))


def convert(src: Path, dst: Path) -> None:
    r = GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    align = r.fields.get("general.alignment")
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    w = GGUFWriter(str(tmp), arch)
    if align is not None:
        w.data_alignment = int(align.contents())
    for name, field in r.fields.items():
        if name in VIRTUAL or name == "general.architecture":
            continue  # header fields, and architecture which GGUFWriter writes first itself
        if name == FILE_TYPE_KEY:
            w.add_key_value(name, ALL_F32, field.types[0])
            continue
        val, vtype, sub = field_value(field)
        w.add_key_value(name, val, vtype, sub)
    if FILE_TYPE_KEY not in r.fields:
        w.add_key_value(FILE_TYPE_KEY, ALL_F32, GGUFValueType.UINT32)
    for t in r.tensors:
        w.add_tensor(t.name, to_f32(t), raw_dtype=GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    check(r, GGUFReader(str(tmp)))
    tmp.replace(dst)


def check(a: GGUFReader, b: GGUFReader) -> None:
    ka = [k for k in a.fields if k not in VIRTUAL]
    kb = [k for k in b.fields if k not in VIRTUAL]
    if sorted(ka) != sorted(kb):
        raise SystemExit(f"key sets differ: only in source {set(ka) - set(kb)}, only in output {set(kb) - set(ka)}")
    for k in ka:
        fa, fb = a.fields[k], b.fields[k]
        if k == FILE_TYPE_KEY:
            if fb.contents() != ALL_F32:
                raise SystemExit(f"{k} = {fb.contents()} in output")
            continue
        if list(fa.types) != list(fb.types):
            raise SystemExit(f"{k}: types {fa.types} != {fb.types}")
        if fa.contents() != fb.contents():
            raise SystemExit(f"{k}: value differs")
    if [t.name for t in a.tensors] != [t.name for t in b.tensors]:
        raise SystemExit("tensor names/order differ")
    for ta, tb in zip(a.tensors, b.tensors):
        if GGMLQuantizationType(tb.tensor_type) != GGMLQuantizationType.F32:
            raise SystemExit(f"{tb.name} is {tb.tensor_type} in output")
        if ta.shape.tolist() != tb.shape.tolist():
            raise SystemExit(f"{ta.name}: shape {ta.shape.tolist()} != {tb.shape.tolist()}")
        if not np.array_equal(to_f32(ta), to_f32(tb)):
            raise SystemExit(f"{ta.name}: values differ")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    convert(src, dst)
    r = GGUFReader(str(dst))
    kinds = {}
    for t in GGUFReader(str(src)).tensors:
        kinds[GGMLQuantizationType(t.tensor_type).name] = kinds.get(GGMLQuantizationType(t.tensor_type).name, 0) + 1
    print(f"wrote {dst} ({dst.stat().st_size} bytes): {len(r.tensors)} tensors, all F32 "
          f"(source tensor types {kinds}), {len(r.fields) - len(VIRTUAL)} metadata fields copied, "
          f"general.file_type=0; read-back check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
