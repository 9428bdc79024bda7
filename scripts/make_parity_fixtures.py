#!/usr/bin/env python3
"""Generate tiny random-weight Hugging Face parity fixtures under assets/parity/.

Run by hand (not in CI):

    /work/pyenv/bin/python scripts/make_parity_fixtures.py

Needs torch, transformers, safetensors (CPU is enough). Deterministic: every
model uses a fixed seed, so re-running reproduces byte-identical files with the
same torch/transformers versions.

For each model <name> this writes assets/parity/<name>/:
  config.json, generation_config.json, model.safetensors (or sharded
  model-XXXXX-of-YYYYY.safetensors + model.safetensors.index.json)
  reference.safetensors with
      input_ids  int64   [seq]
      logits     float32 [seq, vocab]
computed in float32, eval mode, CPU, eager attention, with NO KV cache
(one full forward over the whole sequence). For models stored in bf16/f16 the
reference is computed from the saved (rounded) weights loaded back as float32,
so a loader that upcasts bf16/f16 -> f32 must match to float32 tolerance.

config.json format: transformers 5 writes `rope_parameters: {rope_theta, rope_type}`
and `dtype`; most checkpoints on the Hub (written by transformers 4.x) use a
top-level `rope_theta` and `torch_dtype`. To exercise both code paths, models
with LEGACY_CONFIG=True are rewritten to the 4.x style after saving.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import transformers
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "assets" / "parity"
SEQ_LEN = 24

COMMON = dict(
    hidden_act="silu",
    max_position_embeddings=256,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=None,
    attention_dropout=0.0,
    use_cache=True,
)

MODELS = [
    dict(
        name="qwen3-tiny",
        seed=1001,
        cls=Qwen3ForCausalLM,
        config=Qwen3Config(
            vocab_size=384,
            hidden_size=64,
            intermediate_size=192,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,  # != hidden/heads (16): loader must read head_dim
            rms_norm_eps=1e-6,
            rope_theta=1_000_000.0,
            tie_word_embeddings=True,
            attention_bias=False,
            **COMMON,
        ),
        dtype=torch.float32,
        shard=None,
        legacy_config=True,
    ),
    dict(
        name="qwen2-tiny",
        seed=1002,
        cls=Qwen2ForCausalLM,
        config=Qwen2Config(
            vocab_size=512,
            hidden_size=96,
            intermediate_size=160,
            num_hidden_layers=2,
            num_attention_heads=6,
            num_key_value_heads=2,  # GQA group 3
            rms_norm_eps=1e-5,
            rope_theta=10_000.0,
            tie_word_embeddings=False,
            use_sliding_window=False,
            **COMMON,
        ),
        dtype=torch.bfloat16,
        shard=None,
        legacy_config=True,
    ),
    dict(
        name="llama-tiny",
        seed=1003,
        cls=LlamaForCausalLM,
        config=LlamaConfig(
            vocab_size=256,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=8,
            num_key_value_heads=4,  # GQA group 2
            head_dim=16,  # != hidden/heads (8)
            rms_norm_eps=1e-5,
            rope_theta=500_000.0,
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
            **COMMON,
        ),
        dtype=torch.float32,
        shard="100KB",
        legacy_config=True,
    ),
    dict(
        name="llama-tied-f16",
        seed=1004,
        cls=LlamaForCausalLM,
        config=LlamaConfig(
            vocab_size=320,
            hidden_size=80,
            intermediate_size=144,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,  # GQA group 2
            head_dim=24,  # != hidden/heads (20)
            rms_norm_eps=1e-6,
            rope_theta=10_000.0,
            tie_word_embeddings=True,
            attention_bias=False,
            mlp_bias=False,
            **COMMON,
        ),
        dtype=torch.float16,
        shard=None,
        legacy_config=False,  # keep transformers-5 native `rope_parameters` / `dtype`
    ),
]


def input_ids_for(vocab: int, seed: int) -> torch.Tensor:
    """~24 ids spread over the whole vocab, including both ends."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (SEQ_LEN,), generator=g)
    ids[3] = vocab - 1
    ids[7] = 0
    ids[12] = ids[5]  # a repeated token
    return ids.to(torch.int64)


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int) -> None:
    """Deterministic weights with O(1) activations so attention is far from uniform."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if "norm" in name:
            # RMSNorm weights (incl. Qwen3 q_norm / k_norm): not all ones.
            p.copy_(torch.rand(p.shape, generator=g) + 0.5)  # U(0.5, 1.5)
        elif name.endswith(".bias"):
            p.copy_((torch.rand(p.shape, generator=g) - 0.5))  # U(-0.5, 0.5), nonzero
        elif "embed_tokens" in name:
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        elif p.dim() == 2:
            fan_in = p.shape[1]
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        else:
            raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")


@torch.no_grad()
def full_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=ids[None, :], use_cache=False)
    return out.logits[0].to(torch.float32).contiguous()


def legacyize_config(path: Path) -> None:
    """Rewrite a transformers-5 config.json into the transformers-4.x layout used by most Hub checkpoints."""
    cfg = json.loads(path.read_text())
    rp = cfg.pop("rope_parameters", None)
    if rp is not None:
        assert rp.get("rope_type", "default") == "default", rp
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["rope_scaling"] = None
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    cfg = dict(sorted(cfg.items()))
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def build(spec: dict) -> dict:
    name = spec["name"]
    out_dir = OUT / name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    cfg = spec["config"]
    cfg._attn_implementation = "eager"
    torch.manual_seed(spec["seed"])
    model = spec["cls"](cfg).eval()
    randomize(model, spec["seed"])
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    save_kwargs = dict(safe_serialization=True)
    if spec["shard"]:
        save_kwargs["max_shard_size"] = spec["shard"]
    model.to(spec["dtype"]).save_pretrained(out_dir, **save_kwargs)
    if spec["legacy_config"]:
        legacyize_config(out_dir / "config.json")

    # Reference: reload the saved (possibly rounded) weights as float32.
    ref_model = AutoModelForCausalLM.from_pretrained(
        out_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ids = input_ids_for(cfg.vocab_size, spec["seed"])
    logits = full_logits(ref_model, ids)

    # Sanity: in-memory model (same dtype-rounded weights, upcast) gives the same logits,
    # i.e. the reload (including a legacy config.json) lost nothing.
    # (A fresh float32 model is used: casting the in-memory model to bf16 and back
    # would also round the non-persistent RoPE inv_freq buffer.)
    torch.manual_seed(spec["seed"])
    mem = spec["cls"](cfg).eval()
    rounded = {k: v.to(torch.float32) for k, v in model.state_dict().items()}
    mem.load_state_dict(rounded, strict=True)
    mem_logits = full_logits(mem, ids)
    diff = (mem_logits - logits).abs().max().item()
    assert diff < 1e-4, f"{name}: reload mismatch {diff}"

    # Sanity: incremental decoding with the KV cache reproduces the full-sequence logits.
    with torch.no_grad():
        out = ref_model(input_ids=ids[None, :10], use_cache=True)
        pkv = out.past_key_values
        steps = [out.logits[0]]
        for t in range(10, SEQ_LEN):
            o = ref_model(input_ids=ids[None, t : t + 1], past_key_values=pkv, use_cache=True)
            pkv = o.past_key_values
            steps.append(o.logits[0])
        inc = torch.cat(steps, 0).float()
    cache_diff = (inc - logits).abs().max().item()
    assert cache_diff < 1e-4, f"{name}: cache mismatch {cache_diff}"

    # Sanity: the fixture is sensitive to RoPE (attention is not near-uniform):
    # the same weights with rope_theta scaled by 0.1 / 10 must give clearly different logits.
    # (Editing position_ids instead would not do: RoPE is relative, and transformers
    # reads non-consecutive position_ids as packed sequences and changes the mask.)
    sens = []
    for factor in (0.1, 10.0):
        alt_cfg = copy.deepcopy(ref_model.config)
        alt_cfg.rope_parameters = dict(alt_cfg.rope_parameters)
        alt_cfg.rope_parameters["rope_theta"] *= factor
        alt = spec["cls"](alt_cfg).eval()
        alt.load_state_dict(ref_model.state_dict(), strict=True)
        sens.append((full_logits(alt, ids) - logits).abs().max().item())
    rope_sens = min(sens)

    save_file(
        {"input_ids": ids.contiguous(), "logits": logits},
        str(out_dir / "reference.safetensors"),
        # A single metadata key: safetensors writes multi-key metadata in hash order,
        # which would make the file bytes differ between runs.
        metadata={
            "info": json.dumps(
                {
                    "model": name,
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "note": "float32 eval CPU eager attention, full sequence, no cache",
                },
                sort_keys=True,
            )
        },
    )

    files = sorted(p.name for p in out_dir.iterdir())
    size = sum(p.stat().st_size for p in out_dir.iterdir())
    info = dict(
        name=name,
        files=files,
        bytes=size,
        logits_std=logits.std().item(),
        logits_absmax=logits.abs().max().item(),
        rope_sens_maxdiff=[round(x, 4) for x in sens],
        cache_maxdiff=cache_diff,
        argmax=logits.argmax(-1).tolist(),
    )
    print(json.dumps(info), flush=True)
    assert rope_sens > 1e-2, f"{name}: logits insensitive to positions ({rope_sens})"
    return info


def main() -> int:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__} transformers {transformers.__version__}", file=sys.stderr)
    only = set(sys.argv[1:])
    for spec in MODELS:
        if only and spec["name"] not in only:
            continue
        build(spec)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"assets/parity total: {total} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
