#!/usr/bin/env bash
# The passkey demonstration: trains a small byte-level CoMeT model from scratch on passkey
# inputs of at most 1,024 tokens, then measures retrieval at up to 32x that length.
# The full variant trains in two stages: copying drills until the model can look things up
# in context (stage1.json, stopped at step 2,200 of its schedule), then passkey samples from
# that model (train.json).
#
# Usage: scripts/passkey_demo.sh [full|no-gate|no-temp|no-global|no-memory]   (default: full)
#
# Re-running continues an interrupted training (--resume) and redoes the evaluation.
# Writes results/passkey-small/<variant>.{json,png} and train_log_<variant>.jsonl; the full
# variant also refreshes the committed model in assets/models/passkey-small/.
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT="${1:-full}"
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
RECIPE=assets/recipes/passkey-small
RESULTS=results/passkey-small
case "$VARIANT" in
  full) CONFIG=$RECIPE/train.json; RUN=$CACHE/runs/passkey-small
        GRID=(--lengths 1024,4096,8192,16384,32768 --trials 20) ;;
  no-gate|no-temp|no-global|no-memory)
        CONFIG=$RECIPE/train-$VARIANT.json; RUN=$CACHE/runs/passkey-small-$VARIANT
        GRID=(--lengths 1024,8192,32768 --trials 10) ;;
  *) echo "unknown variant '$VARIANT' (full, no-gate, no-temp, no-global, no-memory)" >&2; exit 2 ;;
esac
cargo build -p comet-cli
COMET="${CARGO_TARGET_DIR:-target}/debug/comet"
mkdir -p "$RESULTS"
if [ "$VARIANT" = full ]; then
  $COMET train --config $RECIPE/stage1.json --resume --stop-at 2200
fi
$COMET train --config "$CONFIG" --resume
cp "$RUN/train_log.jsonl" "$RESULTS/train_log_$VARIANT.jsonl"
# Seed 1000: evaluation samples differ from the training ones (seeded by the config's seed).
$COMET eval passkey --model "$RUN/model" "${GRID[@]}" --depths 0,0.25,0.5,0.75,1 \
  --seed 1000 --batch-size 10 --json "$RESULTS/$VARIANT.json"
if [ "$VARIANT" = full ]; then
  rm -rf assets/models/passkey-small
  cp -r "$RUN/model" assets/models/passkey-small
fi
