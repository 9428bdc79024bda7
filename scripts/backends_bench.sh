#!/usr/bin/env bash
# The README's CPU backends table: flex against ndarray on SmolLM2-135M (Q4_1 GGUF
# dequantized to f32), dev profile (dependencies at opt-level 3, as the tests build them).
# Per backend: prefill of 2,048 random-id tokens with full attention (`comet bench`, a
# fresh process), and `comet generate` "The capital of France is" greedy for 32 tokens
# (prefill and decode tokens/s from its throughput line). Best of RUNS (default 3).
# Writes results/backends/cpu.json. The comparison with llama.cpp and PyTorch is issue 15's
# benchmark, not this one.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
bash scripts/fetch_assets.sh smollm2 >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rows=()
for backend in flex ndarray; do
  cargo build -p comet-cli --no-default-features --features "$backend"
  cp "${CARGO_TARGET_DIR:-target}/debug/comet" "$work/comet-$backend"
done
for backend in flex ndarray; do
  bin="$work/comet-$backend"
  "$bin" bench --lengths 2048 --modes full --out "$work/bench-$backend" >&2
  prefill_2048=$(jq "[.runs[] | select(.mode == \"full\" and .length == 2048) | .seconds] | min" \
    "$work/bench-$backend/bench.json")
  for run in $(seq "$RUNS"); do
    "$bin" generate --prompt "The capital of France is" --max-new-tokens 32 --temperature 0 \
      > /dev/null 2> "$work/gen-$backend-$run"
  done
  line() { grep -h '^prefill:' "$work"/gen-"$backend"-*; }
  best() { line | sed -E "s/.*$1: [0-9]+ tokens in [0-9.]+s \(([0-9.]+) tokens\/s\).*/\1/" | sort -g | tail -1; }
  rows+=("$(jq -n --arg backend "$backend" --argjson p "$prefill_2048" \
    --argjson gp "$(best prefill)" --argjson gd "$(best decode)" \
    '{backend: $backend, prefill_2048_seconds: $p, prefill_2048_tokens_per_second: (2048 / $p),
      generate_prefill_tokens_per_second: $gp, generate_decode_tokens_per_second: $gd}')")
  echo "${rows[-1]}" | jq -c . >&2
done
mkdir -p results/backends
printf '%s\n' "${rows[@]}" | jq -s --arg commit "$(git rev-parse HEAD)" --argjson runs "$RUNS" \
  --arg cpu "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
  '{model: "SmolLM2-135M-Instruct Q4_1 GGUF, dequantized to f32", profile: "dev (dependencies opt-level 3)",
    prompt: "The capital of France is", new_tokens: 32, generate_runs_best_of: $runs, cpu: $cpu,
    commit: $commit, backends: .}' > results/backends/cpu.json
echo "wrote results/backends/cpu.json" >&2
