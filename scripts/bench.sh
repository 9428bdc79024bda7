#!/usr/bin/env bash
# Reproduces results/bench/: CoMeT vs full attention, prefill time and peak memory against
# input length, each measurement in a fresh process. Needs `bash scripts/fetch_assets.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
# The dev profile optimises every dependency (Burn) at opt-level 3, like the tests.
cargo build -p comet-cli
COMET=target/debug/comet

# A small random model (4 layers, hidden 128): long inputs in minutes.
$COMET bench --random-config assets/configs/tiny-random/config.json \
  --lengths 1024,2048,4096,8192,16384,32768,65536 \
  --chunk-size 512 --memory-slots 32 --temp-budget 128 \
  --out results/bench/tiny-random

# SmolLM2-135M on real text (Paul Graham essays), CoMeT sizes scaled to the model.
$COMET bench --text "$CACHE/haystack/paul_graham_essays.txt" \
  --lengths "${SMOLLM2_LENGTHS:-1024,2048,4096,8192,16384,32768}" \
  --chunk-size 512 --memory-slots 64 --compression-stride 8 --temp-budget 256 \
  --out results/bench/smollm2
