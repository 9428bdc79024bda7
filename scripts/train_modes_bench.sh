#!/usr/bin/env bash
# Training cost of the fine-tuning modes on the same samples: SmolLM2-135M-Instruct with the
# smollm2-comet recipe's CoMeT sizes, `full`, `frozen_base` and `lora`, each for STEPS steps in
# a fresh process; text tokens/s (steps after the first) and peak resident memory.
#
# Usage: scripts/train_modes_bench.sh [STEPS]   (default 4)
# Writes results/smollm2-comet/train_modes.json. Run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-4}"
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
OUT=results/smollm2-comet
cargo build --release -p comet-cli
COMET="${CARGO_TARGET_DIR:-target}/release/comet"
bash scripts/fetch_assets.sh smollm2 >/dev/null
bash scripts/fetch_assets.sh haystack >/dev/null
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rows=()
for mode in full frozen_base lora; do
  # stage 1's samples and sizes, one passkey source, this mode.
  jq --arg mode "$mode" --arg out "$work/$mode" --arg hay "$CACHE/haystack/paul_graham_essays.txt" \
    '.mode = $mode | (if $mode == "lora" then . else del(.lora) end) | .out = $out | .data = [.data[0] | .haystack = $hay]
     | .model.pretrained = (.model.pretrained | sub("\\$\\{COMET_CACHE\\}"; env.COMET_CACHE // (env.HOME + "/.cache/comet")))
     | .steps = 100 | .checkpoint_every = 1000' \
    assets/recipes/smollm2-comet/stage1.json > "$work/$mode.json"
  /usr/bin/time -f "%M" -o "$work/$mode.rss" "$COMET" train --config "$work/$mode.json" --stop-at "$STEPS" >/dev/null 2>"$work/$mode.err" \
    || { cat "$work/$mode.err" >&2; exit 1; }
  rss_kib=$(tail -n 1 "$work/$mode.rss")
  rows+=("$(jq -s --arg mode "$mode" --argjson rss "$rss_kib" \
    '{mode: $mode, steps: length, tokens_per_second: ((.[1:] | map(.tokens) | add) / (.[1:] | map(.seconds) | add)),
      seconds_per_step: ((.[1:] | map(.seconds) | add) / (length - 1)), peak_rss_mib: ($rss / 1024 | round)}' \
    "$work/$mode/train_log.jsonl")")
  echo "${rows[-1]}" >&2
done
printf '%s\n' "${rows[@]}" | jq -s --arg steps "$STEPS" \
  '{model: "SmolLM2-135M-Instruct.Q4_1.gguf", recipe: "assets/recipes/smollm2-comet/stage1.json (one haystack)",
    threads: "all cores", steps_per_mode: ($steps | tonumber), note: "first step excluded from throughput (warm-up)", modes: .}' \
  > "$OUT/train_modes.json"
echo "wrote $OUT/train_modes.json" >&2
