#!/usr/bin/env bash
# Context-parallel training against one device: the same run (the small byte-level model,
# 8 x 1,024-token passkey samples a step, chunks of 128) on 1, 2 and 4 ranks; per rank
# count the losses of every step and the wall time. Then the same run over Burn's remote
# backend: REMOTE_RANKS (default "2 4") local `comet serve` processes (loopback websockets),
# one rank each, driven by a `remote` build.
#
# Usage: scripts/context_parallel_check.sh [DEVICES...]
#   default: virtual ranks on the CPU ("0" "0,0" "0,0,0,0"); on GPUs e.g. "0" "0,1" "0,1,2,3"
#   with a cuda build: CARGO_FLAGS="--no-default-features --features cuda".
#   REMOTE_RANKS="" skips the remote runs.
# Writes results/context-parallel/<backend>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${STEPS:-4}"
REMOTE_RANKS="${REMOTE_RANKS-2 4}"
work=$(mktemp -d)
servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
# Both builds share the target folder; each binary is copied out before the next build.
build() {
  # shellcheck disable=SC2086
  cargo build --release -p comet-cli ${CARGO_FLAGS:-} "$@"
  cp "${CARGO_TARGET_DIR:-target}/release/comet" "$work/$name"
}
name=comet build
[ -z "$REMOTE_RANKS" ] || name=comet-remote build --features remote
lists=("$@")
[ ${#lists[@]} -gt 0 ] || lists=("0" "0,0" "0,0,0,0")
for ranks in $REMOTE_RANKS; do
  list=""
  for port in $(seq 3101 $((3100 + ranks))); do list="$list${list:+,}ws://localhost:$port"; done
  lists+=("$list")
done
rows=()
for devices in "${lists[@]}"; do
  tag=$(echo "$devices" | tr -c 'A-Za-z0-9,\n' _)
  COMET="$work/comet" transport=in-process
  if [[ "$devices" == ws://* ]]; then
    COMET="$work/comet-remote" transport="burn-remote websockets, one local comet serve per rank"
    for address in ${devices//,/ }; do
      "$COMET" serve --port "${address##*:}" > "$work/serve-${address##*:}.log" 2>&1 &
      servers+=($!)
    done
    sleep 2
  fi
  jq -n --arg out "$work/run-$tag" --arg model "$PWD/assets/recipes/passkey-small/model.json" \
    --argjson steps "$STEPS" '{
      model: {scratch: {config: $model, seed: 1}},
      comet: {chunk_size: 128, memory_slots: 8, compression_stride: 8, temp_budget: 16, adapter_rank: 8},
      data: [{kind: "passkey", min_length: 1024, max_length: 1024, digits: 1}],
      steps: $steps, batch_size: 8, lr: 0.001, warmup_steps: 1, grad_clip: 1.0,
      checkpoint_every: 1000, log_every: 1, seed: 1, out: $out}' > "$work/$tag.json"
  start=$(date +%s.%N)
  "$COMET" train --config "$work/$tag.json" --devices "$devices" > /dev/null 2> "$work/err-$tag" \
    || { cat "$work/err-$tag" >&2; exit 1; }
  end=$(date +%s.%N)
  [ ${#servers[@]} -eq 0 ] || { kill "${servers[@]}"; wait "${servers[@]}" 2>/dev/null || true; servers=(); }
  rows+=("$(jq -s --arg devices "$devices" --arg transport "$transport" \
    --argjson wall "$(echo "$end - $start" | bc)" \
    '{devices: $devices, transport: $transport, ranks: ($devices | split(",") | length),
      wall_seconds: $wall, step_seconds: (map(.seconds) | add), losses: map(.loss)}' \
    "$work/run-$tag/train_log.jsonl")")
  echo "${rows[-1]}" | jq -c . >&2
done
backend=$(grep -o ' on [a-z]* ->' "$work/err-$(echo "${lists[0]}" | tr -c 'A-Za-z0-9,\n' _)" | head -1 | cut -d' ' -f3)
mkdir -p results/context-parallel
printf '%s\n' "${rows[@]}" | jq -s --arg backend "${backend:-flex}" --arg commit "$(git rev-parse HEAD)" \
  '{backend: $backend, commit: $commit, model: "assets/recipes/passkey-small/model.json (2 layers, hidden 128)",
    samples: "8 x 1,024-token passkey samples a step, chunks of 128 (8 chunks a sample)",
    max_loss_difference_vs_one_rank: ((.[0].losses) as $ref | map([.losses, $ref] | transpose | map(.[0] - .[1] | fabs) | max) | max),
    runs: .}' > "results/context-parallel/${backend:-flex}.json"
echo "wrote results/context-parallel/${backend:-flex}.json" >&2
