#!/usr/bin/env python3
"""GGUF reference data made with the `gguf` package (llama.cpp's gguf-py), not by us.

Writes into assets/gguf/:
  quants.gguf                 one [2, 512] tensor per GGML type we read (F32, F16, BF16,
                              Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)
  quants.reference.safetensors
                              gguf-py's dequantization of each, as f32 (same names)
  llama-tiny.gguf             assets/parity/llama-tiny (transformers' weights) as llama.cpp's
                              converter writes it: GGUF names, Q/K rows permuted for
                              interleaved RoPE, f32; its logits must equal the fixture's.
  llama-tiny-q8.gguf          the same with every 2-D weight quantized to Q8_0 by gguf-py,
                              and llama-tiny-q8.reference.safetensors: those weights
                              dequantized by gguf-py, in Hugging Face names and layout.
gguf-py quantizes F16, BF16, Q4_0..Q8_0 itself; it has no K-quant quantizer, so Q4_K, Q5_K
and Q6_K blocks are random bytes with bounded f16 scales, and only its dequantization is
the reference. Deterministic (seed 0).

Usage: pip install gguf==0.19.0 numpy && python3 scripts/make_gguf_fixtures.py
"""
import json
import struct
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, quants

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "gguf"
RNG = np.random.default_rng(0)


def read_safetensors(path):
    """name -> np.ndarray (f32/f16/bf16 as f32, i64 as i64)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        data = raw[8 + n + a : 8 + n + b]
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(data, np.float32)
        elif dtype == "F16":
            arr = np.frombuffer(data, np.float16).astype(np.float32)
        elif dtype == "BF16":
            arr = (np.frombuffer(data, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(data, np.int64)
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))


def f16_bytes(values):
    return np.asarray(values, np.float16).view(np.uint8)


def random_k_blocks(qtype, rows, cols):
    """Random K-quant super-blocks whose f16 scales are finite and moderate."""
    size = quants.GGML_QUANT_SIZES[qtype][1]
    blocks = RNG.integers(0, 256, (rows, cols // 256, size), dtype=np.uint8)
    if qtype in (T.Q4_K, T.Q5_K):  # d, dmin first
        blocks[..., 0:2] = f16_bytes(RNG.uniform(0.001, 0.05, (rows, cols // 256))).reshape(rows, -1, 2)
        blocks[..., 2:4] = f16_bytes(RNG.uniform(0.001, 0.05, (rows, cols // 256))).reshape(rows, -1, 2)
    else:  # Q6_K: d last
        blocks[..., -2:] = f16_bytes(RNG.uniform(0.001, 0.05, (rows, cols // 256))).reshape(rows, -1, 2)
    return blocks.reshape(rows, -1)


def quants_file():
    rows, cols = 2, 512
    writer = gguf.GGUFWriter(str(OUT / "quants.gguf"), "reference")
    reference = {}
    for qtype in [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K]:
        name = f"t.{qtype.name}"
        values = RNG.standard_normal((rows, cols)).astype(np.float32)
        if qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
            data = random_k_blocks(qtype, rows, cols)
        else:
            data = quants.quantize(values, qtype)
        if qtype == T.F32:
            writer.add_tensor(name, data)
        else:
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
        reference[name] = quants.dequantize(data, qtype).reshape(rows, cols)
    finish(writer)
    write_safetensors(OUT / "quants.reference.safetensors", reference)


def permute(w, heads):
    """llama.cpp's convert_hf_to_gguf permutation of Q/K rows (half-split -> interleaved)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_NAMES = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_name(hf):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    _, _, layer, rest = hf.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    return f"blk.{layer}.{GGUF_NAMES[module]}.{kind}"


def byte_tokens():
    """GPT-2's byte-level alphabet as a 256-token BPE vocabulary whose last token is the one
    merge "Ġ t" (gguf-py drops an empty merge list, and llama.cpp requires one)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(255)] + ["\u0120t"]


def llama_files():
    src = ROOT / "assets" / "parity" / "llama-tiny"
    config = json.loads((src / "config.json").read_text())
    weights = {}
    for shard in sorted(src.glob("model-*.safetensors")):
        weights.update(read_safetensors(shard))
    for quantized in (False, True):
        path = OUT / ("llama-tiny-q8.gguf" if quantized else "llama-tiny.gguf")
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_context_length(config["max_position_embeddings"])
        writer.add_embedding_length(config["hidden_size"])
        writer.add_block_count(config["num_hidden_layers"])
        writer.add_feed_forward_length(config["intermediate_size"])
        writer.add_head_count(config["num_attention_heads"])
        writer.add_head_count_kv(config["num_key_value_heads"])
        writer.add_key_length(config["head_dim"])
        writer.add_value_length(config["head_dim"])
        writer.add_rope_freq_base(config["rope_theta"])
        writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
        writer.add_vocab_size(config["vocab_size"])
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list(byte_tokens())
        writer.add_token_types([1] * 256)
        writer.add_token_merges(["\u0120 t"])
        writer.add_bos_token_id(config["bos_token_id"])
        writer.add_eos_token_id(config["eos_token_id"])
        reference = {}
        for hf, w in sorted(weights.items()):
            if hf.endswith("q_proj.weight"):
                w = permute(w, config["num_attention_heads"])
            elif hf.endswith("k_proj.weight"):
                w = permute(w, config["num_key_value_heads"])
            if quantized and w.ndim == 2:
                data = quants.quantize(w, T.Q8_0)
                writer.add_tensor(gguf_name(hf), data, raw_shape=data.shape, raw_dtype=T.Q8_0)
                back = quants.dequantize(data, T.Q8_0).reshape(w.shape)
                if hf.endswith("q_proj.weight") or hf.endswith("k_proj.weight"):
                    heads = config["num_attention_heads" if "q_proj" in hf else "num_key_value_heads"]
                    # undo the permutation: interleaved -> half-split
                    back = back.reshape(heads, back.shape[0] // heads // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
                reference[hf] = back
            else:
                writer.add_tensor(gguf_name(hf), w.astype(np.float32))
        finish(writer)
        if quantized:
            write_safetensors(OUT / "llama-tiny-q8.reference.safetensors", reference)


def finish(writer):
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    quants_file()
    llama_files()
    for f in sorted(OUT.iterdir()):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size} bytes")
