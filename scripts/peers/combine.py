#!/usr/bin/env python3
"""Combines the measurements of scripts/perf_vs_peers.sh into results/perf/cpu.json (with the
ratio bars `comet plot-ratios` draws) and the README's markdown table. Each figure is also
given as a fraction of the machine's fp32 GEMM peak (torch.mm, same threads), counting the
model's multiply-adds: linear layers (the output head on the last prompt token only in
prefill, as both programs do), and causal attention over the context."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# SmolLM2-135M: 30 layers, hidden 576, MLP 1536, 9 query heads / 3 key-value heads of 64.
LAYERS, HIDDEN, MLP, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 30, 576, 1536, 9, 3, 64, 49152
LINEAR = LAYERS * (2 * HIDDEN * HEADS * HEAD_DIM + 2 * HIDDEN * KV_HEADS * HEAD_DIM + 3 * HIDDEN * MLP)
HEAD = HIDDEN * VOCAB


def attention_flops(queries: int, context_end: int) -> float:
    """q k^T and p v for `queries` positions ending at `context_end`, causal."""
    seen = queries * context_end - queries * (queries - 1) / 2
    return 4 * seen * HEAD_DIM * HEADS * LAYERS


def prefill_flops(n: int) -> float:
    return 2 * n * LINEAR + 2 * HEAD + attention_flops(n, n)


def decode_flops(n: int, decode: int) -> float:
    """One decoding step, averaged over the steps after an n-token prompt."""
    return 2 * LINEAR + 2 * HEAD + attention_flops(1, n + decode // 2)


def train_flops(n: int, mode: str) -> float:
    """Forward (every position's logits) and backward: x3 with weight gradients, x2 without."""
    forward = 2 * n * (LINEAR + HEAD) + attention_flops(n, n)
    return forward * (3 if mode == "full" else 2)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def best_generate(rows: list[dict], label: str, n: int) -> dict:
    mine = [r for r in rows if r["label"] == label and r["length"] == n]
    return {
        "prefill_tokens_per_s": max(r["prefill_tokens_per_s"] for r in mine),
        "decode_tokens_per_s": max(r["decode_tokens_per_s"] for r in mine),
        "runs": len(mine),
        "first_decoded_ids": mine[0]["generated_ids"][:8],
    }


def best_train(rows: list[dict], mode: str) -> dict:
    steps = [r for r in rows if r["mode"] == mode and r["step"] > 1]
    return {
        "tokens_per_s": max(r["tokens"] / r["seconds"] for r in steps),
        "peak_rss_mib": steps[0]["rss_kib"] / 1024,
        "timed_steps": len(steps),
    }


def best_of_attention_paths(llama: dict) -> None:
    """llama.cpp F32's figures: per length, the better of flash attention on and off."""
    for row in llama["f32"]["rows"]:
        other = next(r for r in llama["f32_nofa"]["rows"] if r["length"] == row["length"])
        for key in ("prefill_tokens_per_s", "decode_tokens_per_s"):
            setting = "flash attention" if row[key] >= other[key] else "no flash attention"
            row[key] = max(row[key], other[key])
            row[key.replace("tokens_per_s", "setting")] = setting


def fraction(tokens_per_s: float, flops_per_token: float, peak_gflops: float) -> float:
    return round(tokens_per_s * flops_per_token / 1e9 / peak_gflops, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    for flag in ("--work", "--out", "--markdown", "--commit", "--model"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--runs", type=int, required=True)
    a = ap.parse_args()
    work = Path(a.work)
    gen = jsonl(work / "comet_generate.jsonl")
    train = jsonl(work / "comet_train.jsonl")
    llama = {k: json.loads((work / f"llama_{k}.json").read_text()) for k in ("f32", "f32_nofa", "q41")}
    best_of_attention_paths(llama)
    torch = json.loads((work / "torch.json").read_text())
    peak = torch["gemm_peak_gflops"]
    decode_n = llama["f32"]["decode_tokens"]

    inference, ratios = [], []
    for row in llama["f32"]["rows"]:
        n = row["length"]
        q41 = next(r for r in llama["q41"]["rows"] if r["length"] == n)
        ours = best_generate(gen, "plain", n)
        entry = {"length": n, "comet": ours, "comet_kv_cache": "f16",
                 "comet_f32_cache": {k: best_generate(gen, "plain_f32_cache", n)[k] for k in ("prefill_tokens_per_s", "decode_tokens_per_s")},
                 "llama_cpp_f32": {k: row[k] for k in ("prefill_tokens_per_s", "decode_tokens_per_s", "prefill_setting", "decode_setting", "first_decoded_ids")},
                 "llama_cpp_q4_1": {k: q41[k] for k in ("prefill_tokens_per_s", "decode_tokens_per_s")}}
        for who in ("comet", "llama_cpp_f32", "llama_cpp_q4_1"):
            e = entry[who]
            e["prefill_fraction_of_gemm_peak"] = fraction(e["prefill_tokens_per_s"], prefill_flops(n) / n, peak)
            e["decode_fraction_of_gemm_peak"] = fraction(e["decode_tokens_per_s"], decode_flops(n, decode_n), peak)
        entry["prefill_ratio"] = ours["prefill_tokens_per_s"] / row["prefill_tokens_per_s"]
        entry["decode_ratio"] = ours["decode_tokens_per_s"] / row["decode_tokens_per_s"]
        inference.append(entry)
        ratios.append({"label": f"prefill {n:,} tokens vs llama.cpp F32", "value": entry["prefill_ratio"]})
    for e in inference:
        ratios.append({"label": f"decode after {e['length']:,} tokens vs llama.cpp F32", "value": e["decode_ratio"]})

    long_n = max(r["length"] for r in gen if r["label"] == "comet")
    long = best_generate(gen, "comet", long_n)
    short = min(inference, key=lambda e: e["length"])
    long["decode_vs_llama_cpp_f32_after"] = {"length": short["length"], "ratio": long["decode_tokens_per_s"] / short["llama_cpp_f32"]["decode_tokens_per_s"]}
    ratios.append({"label": f"CoMeT decode after {long_n:,} tokens vs llama.cpp F32 after {short['length']}",
                   "value": long["decode_vs_llama_cpp_f32_after"]["ratio"]})

    training = []
    for row in torch["train"]["rows"]:
        mode = row["mode"]
        ours = best_train(train, mode)
        flops = train_flops(row["length"], mode) / row["length"]
        entry = {"mode": mode, "length": row["length"],
                 "comet": {**ours, "fraction_of_gemm_peak": fraction(ours["tokens_per_s"], flops, peak)},
                 "pytorch": {"tokens_per_s": row["tokens_per_s"], "peak_rss_mib": row["peak_rss_mib"],
                             "fraction_of_gemm_peak": fraction(row["tokens_per_s"], flops, peak)},
                 "ratio": ours["tokens_per_s"] / row["tokens_per_s"],
                 "memory_ratio": ours["peak_rss_mib"] / row["peak_rss_mib"]}
        training.append(entry)
        ratios.append({"label": f"training step ({mode.replace('_', ' ')}) vs PyTorch", "value": entry["ratio"]})

    report = {
        "title": f"comet on this CPU ({a.threads} threads) against llama.cpp F32 and PyTorch",
        "commit": a.commit, "model": Path(a.model).name, "threads": a.threads, "runs": a.runs,
        "cpu": torch["cpu"], "gemm_peak_gflops": peak, "decode_tokens": decode_n,
        "peers": {"llama_cpp": llama["f32"]["version"], "llama_cpp_settings": {k: llama["f32"].get(k) for k in ("batch_size", "flash_attention_used", "kv_cache_type")},
                  "pytorch": torch["versions"], "pytorch_attention": torch["attn_implementation"]},
        "load_average_at_end": torch.get("load_average"),
        "inference": inference, "comet_long": {"length": long_n, **long}, "training": training,
        "ratios": [{"label": r["label"], "value": round(r["value"], 3)} for r in ratios],
    }
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    Path(a.markdown).write_text(markdown(report))


def markdown(r: dict) -> str:
    lines = ["| prompt tokens | comet prefill | llama.cpp F32 | ratio | decode after it: comet | llama.cpp F32 | ratio | comet, f32 cache: prefill / decode | llama.cpp Q4_1 prefill / decode |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in r["inference"]:
        c, l, q = e["comet"], e["llama_cpp_f32"], e["llama_cpp_q4_1"]
        lines.append(f"| {e['length']:,} | {c['prefill_tokens_per_s']:.1f} tok/s ({c['prefill_fraction_of_gemm_peak']:.0%} of peak) "
                     f"| {l['prefill_tokens_per_s']:.1f} ({l['prefill_fraction_of_gemm_peak']:.0%}) | {e['prefill_ratio']:.2f}x "
                     f"| {c['decode_tokens_per_s']:.1f} tok/s ({c['decode_fraction_of_gemm_peak']:.0%}) "
                     f"| {l['decode_tokens_per_s']:.1f} ({l['decode_fraction_of_gemm_peak']:.0%}) | {e['decode_ratio']:.2f}x "
                     f"| {e['comet_f32_cache']['prefill_tokens_per_s']:.1f} / {e['comet_f32_cache']['decode_tokens_per_s']:.1f} "
                     f"| {q['prefill_tokens_per_s']:.1f} / {q['decode_tokens_per_s']:.1f} |")
    lines.append(f"\nBoth caches of keys and values in f16 (llama.cpp's default, {r['peers']['llama_cpp_settings']['kv_cache_type']}; "
                 "comet's `--kv-cache f16`); weights and arithmetic in f32.")
    lc = r["comet_long"]
    lines.append(f"\nCoMeT memory (chunks of 512): prefill of {lc['length']:,} tokens at {lc['prefill_tokens_per_s']:.1f} tok/s, "
                 f"decoding after it at {lc['decode_tokens_per_s']:.1f} tok/s "
                 f"({lc['decode_vs_llama_cpp_f32_after']['ratio']:.2f}x llama.cpp F32's after {lc['decode_vs_llama_cpp_f32_after']['length']} tokens).\n")
    lines += ["| training step, 1,024 tokens | comet | PyTorch | ratio | peak memory: comet | PyTorch |", "|---|---|---|---|---|---|"]
    for e in r["training"]:
        c, t = e["comet"], e["pytorch"]
        lines.append(f"| {e['mode'].replace('_', ' ')} | {c['tokens_per_s']:.1f} tok/s ({c['fraction_of_gemm_peak']:.0%} of peak) "
                     f"| {t['tokens_per_s']:.1f} ({t['fraction_of_gemm_peak']:.0%}) | {e['ratio']:.2f}x "
                     f"| {c['peak_rss_mib']:.0f} MiB | {t['peak_rss_mib']:.0f} MiB |")
    lines.append(f"\n{r['threads']} threads, best of {r['runs']}; fp32 GEMM peak {r['gemm_peak_gflops']:.0f} GFLOP/s (torch.mm); "
                 f"commit {r['commit']}; {r['peers']['llama_cpp']}; torch {r['peers']['pytorch']['torch']}, transformers {r['peers']['pytorch']['transformers']}.\n")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
