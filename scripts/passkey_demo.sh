#!/usr/bin/env bash
# The passkey demonstration: a small byte-level CoMeT model trained from scratch on passkey
# inputs of at most 2,048 tokens, then asked for the key at 8x and 32x that length.
#
# Four stages, all on passkey samples (1-digit keys, repeated filler):
#   stage1.json  in-context retrieval: each sample fits one chunk, no memory;
#   stage2.json  the key through memory over 2-4 chunks of 128 tokens;
#   stage3.json  over up to 16 chunks of 64 tokens;
#   train.json   over up to 32 chunks of 64 tokens (samples of 512-2,048 tokens).
# Each stage starts from the previous one's model. A model dropped from stage 1 straight
# into 64-token chunks and 2,048-token inputs stayed at chance (50 steps), and one taken
# from stage 2 to 2,048 tokens at once trained unstably (loss 0.3 after 100 steps), hence
# the curriculum. Ablations share stage 1 and run stages 2-4 with one memory part off
# (configs derived from the committed ones with jq, written next to the runs).
#
# Usage: scripts/passkey_demo.sh [full|no-gate|no-temp|no-global|no-memory|all|table]
#        (default: full; `table` only rebuilds the ablation table from the JSON results)
#
# Re-running continues an interrupted training (--resume) and redoes the evaluation.
# Writes results/passkey-small/<variant>.{json,png} and train_log_<variant>.jsonl; `all`
# also writes the ablation table results/passkey-small/ablations.md; the full variant
# refreshes the committed model in assets/models/passkey-small/.
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT="${1:-full}"
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
RECIPE=assets/recipes/passkey-small
RESULTS=results/passkey-small
LENGTHS=2048,16384,65536
DEPTHS=0,0.25,0.5,0.75,1
cargo build -p comet-cli
COMET="${CARGO_TARGET_DIR:-target}/debug/comet"
mkdir -p "$RESULTS"

run_variant() {
  local variant=$1 switches run trials=5
  case "$variant" in
    full) switches='{}'; trials=10 ;;
    no-gate) switches='{"use_gate": false}' ;;
    no-temp) switches='{"use_temp": false}' ;;
    no-global) switches='{"use_global": false}' ;;
    no-memory) switches='{"use_global": false, "use_temp": false}' ;;
    *) echo "unknown variant '$variant' (full, no-gate, no-temp, no-global, no-memory, all)" >&2
       exit 2 ;;
  esac
  $COMET train --config $RECIPE/stage1.json --resume
  if [ "$variant" = full ]; then
    run=$CACHE/runs/passkey-small
  else
    run=$CACHE/runs/passkey-small-$variant
  fi
  local from="" stage config
  for stage in stage2 stage3 train; do
    config=$RECIPE/$stage.json
    if [ "$variant" != full ]; then
      # The committed config with this variant's switch, reading the previous stage's model.
      local out=$run-$stage; [ $stage = train ] && out=$run
      mkdir -p "$out"
      jq --arg from "$from" --arg out "$out" --argjson sw "$switches" \
        '(if $from != "" then .model.pretrained = $from else . end) | .out = $out | .comet += $sw' \
        "$config" > "$out/$stage-config.json"
      config=$out/$stage-config.json
      from=$out/model
    fi
    $COMET train --config "$config" --resume
  done
  cat "$CACHE/runs/passkey-small-stage1/train_log.jsonl" "$run-stage2/train_log.jsonl" \
    "$run-stage3/train_log.jsonl" "$run/train_log.jsonl" > "$RESULTS/train_log_$variant.jsonl"
  # Seed 1000: evaluation samples differ from the training ones (seeded by the config's seed).
  $COMET eval passkey --model "$run/model" --digits 1 --lengths $LENGTHS --depths $DEPTHS \
    --trials $trials --seed 1000 --batch-size 10 --json "$RESULTS/$variant.json"
  if [ "$variant" = full ]; then
    rm -rf assets/models/passkey-small; mkdir -p assets/models
    cp -r "$run/model" assets/models/passkey-small
  fi
}

# Accuracy per input length (all depths together), one row per variant.
table() {
  echo "| variant | $(echo $LENGTHS | sed 's/,/ tokens | /g') tokens |"
  echo "|---|$(echo $LENGTHS | sed 's/[0-9]*/---:/g; s/,/|/g')|"
  for variant in full no-gate no-temp no-global no-memory; do
    [ -f "$RESULTS/$variant.json" ] || continue
    echo "| $variant | $(jq -r --arg l "$LENGTHS" '[($l | split(",") | .[] | tonumber) as $n
      | [(if type == "array" then .[] else .cells[] end) | select(.length == $n)] | (map(.accuracy * .trials) | add) / (map(.trials) | add)
      | "\(. * 100 | round)%"] | join(" | ")' "$RESULTS/$variant.json") |"
  done
}

case "$VARIANT" in
  all) for variant in full no-gate no-temp no-global no-memory; do run_variant $variant; done
       table | tee "$RESULTS/ablations.md" ;;
  table) table | tee "$RESULTS/ablations.md" ;;
  *) run_variant "$VARIANT" ;;
esac
