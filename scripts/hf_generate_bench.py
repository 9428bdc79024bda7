#!/usr/bin/env python3
"""Hugging Face reference timing for SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to f32).

Run by hand (not in CI), after `scripts/fetch_assets.sh smollm2`:

    /work/pyenv/bin/python scripts/hf_generate_bench.py [--threads 2] [--new-tokens 32] [--runs 3]

Needs torch, transformers, gguf, accelerate. transformers dequantizes every GGUF
tensor to float32 at load time, so this measures plain f32 PyTorch CPU inference.

Timing (greedy, KV cache, batch 1, raw prompt without chat template):
  prefill = one forward over the prompt tokens (its logits give new token #1)
  decode  = the remaining N-1 single-token forwards (new tokens #2..#N)
  prefill tok/s = prompt_len / prefill_s ; decode tok/s = (N-1) / decode_s
One untimed warm-up run, then the median of --runs timed runs. The manual loop's
tokens are checked against model.generate(do_sample=False).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The capital of France is"


def gguf_dir() -> Path:
    cache = Path(os.environ.get("COMET_CACHE", Path.home() / ".cache" / "comet"))
    return cache / "smollm2"


def load(dtype=torch.float32, attn: str = "eager"):
    d = gguf_dir()
    if not (d / GGUF_NAME).exists():
        sys.exit(f"missing {d / GGUF_NAME}: run scripts/fetch_assets.sh smollm2")
    tok = AutoTokenizer.from_pretrained(str(d), gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(
        str(d), gguf_file=GGUF_NAME, dtype=dtype, attn_implementation=attn
    ).eval()
    return tok, model


@torch.no_grad()
def greedy(model, ids: torch.Tensor, new_tokens: int):
    """Returns (generated ids, prefill seconds, decode seconds)."""
    t0 = time.perf_counter()
    out = model(input_ids=ids, use_cache=True)
    nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
    t1 = time.perf_counter()
    pkv = out.past_key_values
    gen = [nxt]
    for _ in range(new_tokens - 1):
        out = model(input_ids=nxt, past_key_values=pkv, use_cache=True)
        pkv = out.past_key_values
        nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
        gen.append(nxt)
    t2 = time.perf_counter()
    return torch.cat(gen, 1)[0], t1 - t0, t2 - t1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    # eager (the default) is what the parity fixtures use; sdpa measured about the same here.
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    t_load = time.perf_counter()
    tok, model = load(attn=args.attn)
    t_load = time.perf_counter() - t_load

    ids = tok(PROMPT, return_tensors="pt", add_special_tokens=False).input_ids
    n_prompt = ids.shape[1]

    greedy(model, ids, args.new_tokens)  # warm-up
    runs = [greedy(model, ids, args.new_tokens) for _ in range(args.runs)]
    gen = runs[0][0]
    for g, _, _ in runs:
        assert torch.equal(g, gen)
    prefill_s = statistics.median(r[1] for r in runs)
    decode_s = statistics.median(r[2] for r in runs)
    prefill_min = min(r[1] for r in runs)
    decode_min = min(r[2] for r in runs)

    with torch.no_grad():
        ref = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new_tokens,
            do_sample=False, pad_token_id=tok.pad_token_id,
        )[0, n_prompt:]
    match = torch.equal(ref, gen[: ref.shape[0]])

    print(f"model: {gguf_dir() / GGUF_NAME} (dequantized by transformers to float32)")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"python {platform.python_version()}, threads {torch.get_num_threads()}, "
          f"attn_implementation {model.config._attn_implementation}, "
          f"cpu: {platform.processor() or platform.machine()}")
    print(f"load time: {t_load:.2f} s")
    print(f"prompt: {PROMPT!r}")
    print(f"prompt ids ({n_prompt}): {ids[0].tolist()}")
    print(f"greedy new ids ({gen.shape[0]}): {gen.tolist()}")
    print(f"continuation: {tok.decode(gen, skip_special_tokens=False)!r}")
    print(f"model.generate(do_sample=False) gives the same ids: {match}")
    print(f"runs: {args.runs} timed (median unless noted), 1 warm-up")
    print(f"prefill: {n_prompt} tokens in {prefill_s * 1e3:.1f} ms = {n_prompt / prefill_s:.1f} tok/s")
    n_dec = args.new_tokens - 1
    print(f"decode: {n_dec} tokens in {decode_s * 1e3:.1f} ms = {n_dec / decode_s:.1f} tok/s "
          f"({decode_s / n_dec * 1e3:.1f} ms/token)")
    print(f"best run: prefill {n_prompt / prefill_min:.1f} tok/s, decode {n_dec / decode_min:.1f} tok/s")
    print("load average (1/5/15 min) at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
          + f" on {os.cpu_count()} cpus (other work on the machine skews timings)")
    total = prefill_s + decode_s
    print(f"end-to-end: {args.new_tokens} new tokens in {total * 1e3:.1f} ms = "
          f"{args.new_tokens / total:.1f} tok/s")
    return 0 if match else 1


if __name__ == "__main__":
    sys.exit(main())
