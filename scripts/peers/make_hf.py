#!/usr/bin/env python3
"""Hugging Face directory + benchmark token ids from a GGUF file (used by scripts/peers/setup.sh).

    python scripts/peers/make_hf.py --gguf peers/SmolLM2-135M-Instruct.F32.gguf \
        --out peers/smollm2-hf --text haystack/paul_graham_essays.txt \
        --tokens-out peers/tokens.json [--n-tokens 40000]

transformers reads the GGUF (its tensors dequantized to float32; Q/K rows un-permuted to the HF
layout), the model is copied into a plain (unquantized) instance and written with save_pretrained
(config.json, model.safetensors f32), the tokenizer rebuilt from the GGUF vocab/merges with its
save_pretrained. Then the saved directory is reloaded and its logits on a short prompt are checked
against the GGUF-loaded model. tokens.json: {"source", "tokenizer", "count", "ids"} with the first
--n-tokens ids of the text, no special tokens added.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from export_smollm2_hf import unquantized  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--text", required=True, type=Path)
    ap.add_argument("--tokens-out", required=True, type=Path)
    ap.add_argument("--n-tokens", type=int, default=40000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    d, name = str(a.gguf.parent), a.gguf.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    g = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()

    plain = unquantized(g)
    a.out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(a.out, safe_serialization=True)
    tok.save_pretrained(a.out)

    # Reload check.
    re = AutoModelForCausalLM.from_pretrained(str(a.out), dtype=torch.float32).eval()
    re_tok = AutoTokenizer.from_pretrained(str(a.out))
    probe = "The capital of France is"
    ids = tok(probe, return_tensors="pt", add_special_tokens=False).input_ids
    if re_tok(probe, add_special_tokens=False).input_ids != ids[0].tolist():
        raise SystemExit("reloaded tokenizer tokenizes differently")
    with torch.no_grad():
        diff = (re(input_ids=ids).logits - g(input_ids=ids).logits).abs().max().item()
    if diff > 1e-4:
        raise SystemExit(f"reloaded model differs: max |logits diff| {diff}")

    text = a.text.read_text(encoding="utf-8")
    # Tokenize only a prefix long enough for n ids (the whole file can be megabytes).
    chars = min(len(text), a.n_tokens * 8)
    while True:
        all_ids = re_tok(text[:chars], add_special_tokens=False).input_ids
        if len(all_ids) > a.n_tokens + 64 or chars >= len(text):  # margin: the cut word tokenizes differently
            break
        chars = min(len(text), chars * 2)
    out_ids = all_ids[: a.n_tokens]
    if len(out_ids) < a.n_tokens:
        print(f"warning: text has only {len(out_ids)} tokens", file=sys.stderr)
    a.tokens_out.write_text(json.dumps({
        "source": str(a.text),
        "tokenizer": f"{a.out} (from {a.gguf.name}; transformers {transformers.__version__}), add_special_tokens=False",
        "count": len(out_ids),
        "ids": out_ids,
    }) + "\n")
    print(f"wrote {a.out} (reload max |logits diff| {diff:.2g}; tie_word_embeddings={plain.config.tie_word_embeddings}) "
          f"and {a.tokens_out} ({len(out_ids)} ids from {chars} chars of {a.text.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
