#!/usr/bin/env python3
"""PyTorch (CPU, float32) + transformers peer benchmark for SmolLM2-135M-Instruct.

    $COMET_CACHE/peers/venv/bin/python scripts/peers/torch_bench.py \
        --hf $COMET_CACHE/peers/smollm2-hf --tokens $COMET_CACHE/peers/tokens.json \
        --threads 2 --runs 3 --length 1024 [--infer-lengths 512,2048 --decode 32] \
        [--attn sdpa] [--skip gemm,train,infer]

Prints one JSON object on stdout (progress on stderr):
  gemm      fp32 torch.mm GFLOP/s at --threads: square 512..4096 and the model's own forward/backward
            shapes at M=--length tokens; "gemm_peak_gflops" is the best of all.
  train     one optimizer step (forward, shifted-LM loss with labels = inputs, backward, AdamW step,
            zero_grad) on the first --length ids, batch 1, f32. Modes:
              full         all parameters trainable, AdamW over all of them
              frozen_base  every weight requires_grad=False; a zero-initialised trainable delta
                           [length, hidden] is added to inputs_embeds and is AdamW's only parameter, so
                           the backward still runs through every layer (activation grads, no weight grads)
            Each mode runs in a fresh subprocess: 1 untimed warm-up step, then best of --runs steps;
            tokens/s = length / step seconds; peak RSS = ru_maxrss of that subprocess (includes the
            model load).
  infer     same protocol as llama_cpp_bench.mjs: per length N, prefill = forward over N ids with a KV
            cache and logits for the last position only (logits_to_keep=1) -> greedy token #1;
            decode = tokens #2..#D one forward each; prefill tok/s = N / s, decode tok/s = (D-1) / s;
            best of --runs, after one untimed warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def current_rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def load_ids(path: Path, n: int) -> list[int]:
    ids = json.loads(path.read_text())["ids"]
    if len(ids) < n:
        raise SystemExit(f"{path} has {len(ids)} ids < {n}")
    return ids[:n]


def load_model(hf: Path, attn: str):
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32, attn_implementation=attn)
    return m


# ---------------------------------------------------------------------------------------------- GEMM

def gemm(length: int, hf: Path) -> dict:
    import torch

    cfg = json.loads((hf / "config.json").read_text())
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or h // nh
    kv = nkv * hd
    m = length
    shapes = {f"square_{s}": (s, s, s) for s in (512, 1024, 2048, 3072, 4096)}
    # (M, K, N): C[M,N] = A[M,K] @ B[K,N]. Forward, grad-input (dY @ W), grad-weight (dY^T @ X).
    model = {
        "q_o_proj": (m, h, h), "k_v_proj": (m, h, kv), "gate_up_proj": (m, h, inter), "down_proj": (m, inter, h),
        "lm_head": (m, h, v),
        "bwd_dx_gate_up": (m, inter, h), "bwd_dx_down": (m, h, inter), "bwd_dx_lm_head": (m, v, h),
        "bwd_dw_gate_up": (inter, m, h), "bwd_dw_down": (h, m, inter), "bwd_dw_q_o": (h, m, h),
        "bwd_dw_lm_head": (v, m, h),
    }
    shapes.update({f"model_{k}": s for k, s in model.items()})
    out = {}
    for name, (M, K, N) in shapes.items():
        a = torch.randn(M, K)
        b = torch.randn(K, N)
        c = torch.empty(M, N)
        torch.mm(a, b, out=c)  # warm-up
        flop = 2.0 * M * K * N
        best, spent, reps = float("inf"), 0.0, 0
        while reps < 3 or (spent < 0.5 and reps < 50):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            dt = time.perf_counter() - t0
            best, spent, reps = min(best, dt), spent + dt, reps + 1
        out[name] = {"mkn": [M, K, N], "gflops": round(flop / best / 1e9, 2), "reps": reps}
        log(f"gemm {name} {M}x{K}x{N}: {out[name]['gflops']} GFLOP/s (best of {reps})")
        del a, b, c
    peak = max(out.values(), key=lambda r: r["gflops"])
    peak_name = next(k for k, r in out.items() if r is peak)
    return {"gemm_peak_gflops": peak["gflops"], "gemm_peak_shape": peak_name, "gemm": out}


# --------------------------------------------------------------------------------------------- train

def train_child(a) -> dict:
    """One training mode, in its own process (so ru_maxrss is that mode's peak)."""
    import torch

    torch.set_num_threads(a.threads)
    ids = torch.tensor([load_ids(a.tokens, a.length)], dtype=torch.long)
    model = load_model(a.hf, a.attn)
    model.train()  # SmolLM2 has no dropout (attention_dropout=0), so train() changes nothing numerically
    rss_loaded = current_rss_mib()
    hidden = model.config.hidden_size

    if a.mode == "full":
        params = [p for p in model.parameters() if p.requires_grad]

        def step():
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()
    elif a.mode == "frozen_base":
        model.requires_grad_(False)
        delta = torch.zeros(1, a.length, hidden, requires_grad=True)
        params = [delta]
        emb = model.get_input_embeddings()

        def step():
            x = emb(ids) + delta
            loss = model(inputs_embeds=x, labels=ids, use_cache=False).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()
    else:
        raise SystemExit(f"unknown mode {a.mode}")

    opt = torch.optim.AdamW(params, lr=1e-5)
    n_trainable = sum(p.numel() for p in params)
    t0 = time.perf_counter()
    warm_loss = step()
    warm_s = time.perf_counter() - t0
    log(f"train {a.mode}: warm-up step {warm_s:.2f} s, loss {warm_loss:.4f}")
    times, losses = [], []
    for r in range(a.runs):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)
        log(f"train {a.mode}: step {r} {times[-1]:.2f} s ({a.length / times[-1]:.1f} tok/s), loss {losses[-1]:.4f}")
    best = min(times)
    return {
        "mode": a.mode,
        "length": a.length,
        "trainable_params": n_trainable,
        "tokens_per_s": round(a.length / best, 2),
        "step_s_best": round(best, 4),
        "step_s_runs": [round(t, 4) for t in times],
        "warmup_step_s": round(warm_s, 4),
        "losses": [round(warm_loss, 5)] + [round(x, 5) for x in losses],
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_after_load_mib": None if rss_loaded is None else round(rss_loaded, 1),
    }


def train(a, modes: list[str]) -> list[dict]:
    rows = []
    for mode in modes:
        cmd = [sys.executable, os.path.abspath(__file__), "--_child", "--mode", mode,
               "--hf", str(a.hf), "--tokens", str(a.tokens), "--threads", str(a.threads),
               "--runs", str(a.runs), "--length", str(a.length), "--attn", a.attn]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise SystemExit(f"train mode {mode} failed (exit {p.returncode})")
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return rows


# --------------------------------------------------------------------------------------------- infer

def infer(a, lengths: list[int]) -> list[dict]:
    import torch

    import inspect

    model = load_model(a.hf, a.attn).eval()
    all_ids = load_ids(a.tokens, max(lengths))
    # transformers >= 5.2x renamed past_key_values -> cache (the old name warns); support both.
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def get_cache(out):
        c = getattr(out, "cache", None)
        return c if c is not None else out.past_key_values

    @torch.inference_mode()
    def once(n: int, d: int):
        ids = torch.tensor([all_ids[:n]], dtype=torch.long)
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
        gen = [int(nxt)]
        t1 = time.perf_counter()
        cache = get_cache(out)
        for _ in range(d - 1):
            out = model(input_ids=nxt, use_cache=True, logits_to_keep=1, **{cache_kw: cache})
            cache = get_cache(out)
            nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
            gen.append(int(nxt))
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, gen, tuple(out.logits.shape)

    _, _, warm_ids, _ = once(min(lengths), 8)
    log(f"infer warm-up ids {warm_ids}")
    rows = []
    for n in lengths:
        pf, dc, first = [], [], None
        for r in range(a.runs):
            ps, ds, gen, lshape = once(n, a.decode)
            pf.append(n / ps)
            dc.append((a.decode - 1) / ds)
            if first is None:
                first = gen
            elif gen != first:
                log(f"WARNING: run {r} decoded different ids at N={n}")
            log(f"infer N={n} run {r}: prefill {ps:.3f} s ({pf[-1]:.1f} tok/s), decode {ds:.3f} s ({dc[-1]:.2f} tok/s)")
        rows.append({
            "length": n,
            "prefill_tokens_per_s": round(max(pf), 2),
            "decode_tokens_per_s": round(max(dc), 3),
            "prefill_runs_tokens_per_s": [round(x, 2) for x in pf],
            "decode_runs_tokens_per_s": [round(x, 3) for x in dc],
            "first_decoded_ids": first[:8],
            "decoded_ids": first,
            "last_logits_shape": list(lshape),
        })
    return rows


# ---------------------------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf", type=Path, required=True)
    ap.add_argument("--tokens", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--length", type=int, default=1024, help="training sequence length (and GEMM M)")
    ap.add_argument("--infer-lengths", default="512,2048")
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--modes", default="full,frozen_base")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--skip", default="", help="comma list of sections to skip: gemm,train,infer")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.decode < 2:
        raise SystemExit("--decode must be >= 2")

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)  # before torch is imported; children inherit it
    import torch

    torch.set_num_threads(a.threads)
    if a._child:
        print(json.dumps(train_child(a)))
        return 0

    import transformers

    skip = {s for s in a.skip.split(",") if s}
    t_start = time.perf_counter()
    res = {
        "program": "pytorch+transformers",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "threads": a.threads,
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "dtype": "float32",
        "attn_implementation": a.attn,
        "model": str(a.hf),
        "tokens": str(a.tokens),
        "runs": a.runs,
    }
    if "gemm" not in skip:
        res.update(gemm(a.length, a.hf))
    if "train" not in skip:
        res["train"] = {"length": a.length, "batch": 1, "optimizer": "AdamW(lr=1e-5)",
                        "protocol": "fresh subprocess per mode; 1 untimed warm-up step; best of runs; "
                                    "step = forward + loss + backward + AdamW step + zero_grad",
                        "rows": train(a, [m for m in a.modes.split(",") if m])}
    if "infer" not in skip:
        res["infer"] = {"decode_tokens": a.decode,
                        "protocol": "prefill = forward(N ids, KV cache, logits_to_keep=1) to greedy token #1; "
                                    "decode = tokens 2..D one forward each; best of runs; 1 untimed warm-up",
                        "rows": infer(a, [int(x) for x in a.infer_lengths.split(",") if x])}
    res["wall_s"] = round(time.perf_counter() - t_start, 1)
    res["load_average"] = list(os.getloadavg())
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
