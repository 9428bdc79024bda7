#!/usr/bin/env bash
# Context-parallel training against one device: the same run (the small byte-level model,
# 8 x 1,024-token passkey samples a step, chunks of 128) on 1, 2 and 4 ranks; per rank
# count the losses of every step and the wall time.
#
# Usage: scripts/context_parallel_check.sh [DEVICES...]
#   default: virtual ranks on the CPU ("0" "0,0" "0,0,0,0"); on GPUs e.g. "0" "0,1" "0,1,2,3"
#   with a cuda build: CARGO_FLAGS="--no-default-features --features cuda".
# Writes results/context-parallel/<backend>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${STEPS:-4}"
# shellcheck disable=SC2086
cargo build --release -p comet-cli ${CARGO_FLAGS:-}
COMET="${CARGO_TARGET_DIR:-target}/release/comet"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lists=("$@")
[ ${#lists[@]} -gt 0 ] || lists=("0" "0,0" "0,0,0,0")
rows=()
for devices in "${lists[@]}"; do
  jq -n --arg out "$work/run-$devices" --arg model "$PWD/assets/recipes/passkey-small/model.json" \
    --argjson steps "$STEPS" '{
      model: {scratch: {config: $model, seed: 1}},
      comet: {chunk_size: 128, memory_slots: 8, compression_stride: 8, temp_budget: 16, adapter_rank: 8},
      data: [{kind: "passkey", min_length: 1024, max_length: 1024, digits: 1}],
      steps: $steps, batch_size: 8, lr: 0.001, warmup_steps: 1, grad_clip: 1.0,
      checkpoint_every: 1000, log_every: 1, seed: 1, out: $out}' > "$work/$devices.json"
  start=$(date +%s.%N)
  "$COMET" train --config "$work/$devices.json" --devices "$devices" > /dev/null 2> "$work/err" \
    || { cat "$work/err" >&2; exit 1; }
  end=$(date +%s.%N)
  rows+=("$(jq -s --arg devices "$devices" --argjson wall "$(echo "$end - $start" | bc)" \
    '{devices: $devices, ranks: ($devices | split(",") | length), wall_seconds: $wall,
      step_seconds: (map(.seconds) | add), losses: map(.loss)}' "$work/run-$devices/train_log.jsonl")")
  echo "${rows[-1]}" | jq -c . >&2
done
backend=$(grep -o ' on [a-z]* ->' "$work/err" | head -1 | cut -d' ' -f3)
mkdir -p results/context-parallel
printf '%s\n' "${rows[@]}" | jq -s --arg backend "${backend:-flex}" --arg commit "$(git rev-parse HEAD)" \
  '{backend: $backend, commit: $commit, model: "assets/recipes/passkey-small/model.json (2 layers, hidden 128)",
    samples: "8 x 1,024-token passkey samples a step, chunks of 128 (8 chunks a sample)",
    max_loss_difference_vs_one_rank: ((.[0].losses) as $ref | map([.losses, $ref] | transpose | map(.[0] - .[1] | fabs) | max) | max),
    runs: .}' > "results/context-parallel/${backend:-flex}.json"
echo "wrote results/context-parallel/${backend:-flex}.json" >&2
