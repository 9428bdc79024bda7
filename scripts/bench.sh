#!/usr/bin/env bash
# Reproduces results/bench/: CoMeT vs full attention, prefill time and peak memory against
# input length, each measurement in a fresh process. Needs `bash scripts/fetch_assets.sh`.
# LONG_INPUTS=1 also reruns the long single-run measurements of results/long-input/.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
# The dev profile optimises every dependency (Burn) at opt-level 3, like the tests.
cargo build -p comet-cli
COMET="${CARGO_TARGET_DIR:-target}/debug/comet"

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

# Long inputs in one run each (results/long-input/long_input.json): the small random model
# over 1,000,000 tokens, SmolLM2 over 8,192 and 100,000 tokens of real text. Each prints
# one JSON line (time, peak memory, first/last chunk time).
if [ "${LONG_INPUTS:-0}" = 1 ]; then
  $COMET bench-run --spec '{"random_config": "assets/configs/tiny-random/config.json", "mode": "comet", "length": 1000000,
    "comet": {"chunk_size": 512, "memory_slots": 32, "compression_stride": 8, "temp_budget": 128, "adapter_rank": 8}}'
  for n in 8192 100000; do
    $COMET bench-run --spec "{\"text\": \"$CACHE/haystack/paul_graham_essays.txt\", \"mode\": \"comet\", \"length\": $n,
      \"comet\": {\"chunk_size\": 512, \"memory_slots\": 64, \"compression_stride\": 8, \"temp_budget\": 256, \"adapter_rank\": 8}}"
  done
fi
