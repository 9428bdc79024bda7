#!/usr/bin/env bash
# Passkey evaluation of the committed SmolLM2 CoMeT adapter on the held-out haystack (the
# King James Bible, kept out of training): 5-digit keys, depths 0.1-0.9, TRIALS per cell.
#
# Usage: scripts/smollm2_comet_eval.sh [comet|comet-16k|full-attention|ablations|table|
#                                       progress|progress-full|retention|fresh|all]
#   comet           the adapter at LENGTHS (default 2048,16384,65536)
#   comet-16k       the adapter at 16,384 tokens with a temporary memory that holds them all
#                   (BUDGET, default 2,048 entries)
#   full-attention  the same base without memory, reading each input whole, at FULL_LENGTHS
#                   (default 2048,16384; 16,384 is twice its 8k window)
#   ablations       the adapter with one part of the memory switched off at evaluation
#                   (--no-gate, --no-temp, --no-global, and no memory at all)
#   table           results/smollm2-comet/table.md from the JSON files present
#   progress DIR NAME [FLAGS]  a training stage's adapter DIR on short inputs (256, 512 and
#                   1,024 tokens, depths 0.05/0.5/0.9, 8 trials, seed 7), FLAGS (e.g.
#                   --temp-source text_input) changing its stored config:
#                   results/.../progress-NAME.json
#   fresh NAME FLAGS  the same grid with fresh (untrained) memory modules and no adapter
#                   (chunks of 128, 16 slots), FLAGS setting the rest
#   progress-full   the same grid read by the base model with full attention, no memory
#   retention DIR NAME [FLAGS]  how far back an adapter brings a key: 2,048, 4,096 and 16,384
#                   tokens, the needle at the start and in the middle, 8 trials, seed 11:
#                   results/.../retention-NAME.json
# Environment: ADAPTER (the committed one), TAG (appended to every result file's name),
#   TRIALS (20), SEED (2026), LENGTHS, FULL_LENGTHS, FULL_TRIALS (2), FULL_DEPTHS
#   (0.1,0.5,0.9: full attention takes ~13 minutes per 16k-token input on 2 cores),
#   ABLATION_LENGTHS (2048,16384), ABLATION_TRIALS (10), ABLATIONS (which of no-gate,
#   no-temp, no-global, no-memory; all by default), BATCH (4), BUDGET (the temporary
#   memory's entries at evaluation; default the adapter's own; 2,048 entries hold the last
#   16,384 tokens at stride 8), COMET_TAG / FULL_TAG (the table's comet and full-attention
#   rows from files of another TAG; empty for the untagged file), RESUME=1 (keep the cells
#   a stopped run of the same grid left in its JSON and read only the rest: the report is
#   rewritten after every cell).
# Writes results/smollm2-comet/<variant>.{json,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-all}"
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
ADAPTER="${ADAPTER:-assets/adapters/smollm2-comet}"
OUT=results/smollm2-comet
TRIALS="${TRIALS:-20}"
SEED="${SEED:-2026}"
LENGTHS="${LENGTHS:-2048,16384,65536}"
FULL_LENGTHS="${FULL_LENGTHS:-2048,16384}"
FULL_TRIALS="${FULL_TRIALS:-2}"
FULL_DEPTHS="${FULL_DEPTHS:-0.1,0.5,0.9}"
ABLATION_LENGTHS="${ABLATION_LENGTHS:-2048,16384}"
ABLATION_TRIALS="${ABLATION_TRIALS:-10}"
BATCH="${BATCH:-4}"
DEPTHS=0.1,0.3,0.5,0.7,0.9
HAYSTACK="$CACHE/haystack/kjv_bible.txt"
mkdir -p "$OUT"
cargo build --release -p comet-cli
COMET="${CARGO_TARGET_DIR:-target}/release/comet"
bash scripts/fetch_assets.sh smollm2 >/dev/null
bash scripts/fetch_assets.sh kjv >/dev/null
MODEL=$("$COMET" fetch)

run() { # variant lengths trials depths extra-args...
  local variant=$1 lengths=$2 trials=$3 depths=$4
  shift 4
  local resume=()
  [ "${RESUME:-0}" = 1 ] && resume=(--resume)
  "$COMET" eval passkey --model "$MODEL" --digits 5 --lengths "$lengths" --depths "$depths" \
    --trials "$trials" --seed "$SEED" --haystack "$HAYSTACK" --batch-size "$BATCH" \
    --json "$OUT/$variant${TAG:-}.json" ${BUDGET:+--temp-budget "$BUDGET"} \
    "${resume[@]}" "$@"
}

# The short grid (256, 512 and 1,024 tokens, depths 0.05/0.5/0.9, 8 trials, seed 7):
# results/.../progress-NAME.json.
grid() { # name extra-args...
  local name=$1
  shift
  SEED=7 run "progress-$name" 256,512,1024 8 0.05,0.5,0.9 "$@"
}

# One row per variant: exact keys per length over all depths, the share of key tokens
# right, and for CoMeT the keys read through memory only (needle before the question's
# chunk).
table() {
  echo "| variant | trials per cell | exact keys by length, depths 0.1-0.9 together |"
  echo "|---|---:|---|"
  for variant in comet comet-16k full-attention no-gate no-temp no-global no-memory; do
    local tag=${TAG:-}
    case $variant in
      comet | comet-16k) tag=${COMET_TAG-$tag} ;;
      full-attention) tag=${FULL_TAG-$tag} ;;
    esac
    [ -f "$OUT/$variant$tag.json" ] || continue
    jq -r --arg v "$variant" '
      (.reader == "full attention") as $full
      | (.cells | group_by(.length) | map(
        "\(.[0].length): \((map(.correct) | add) * 100 / (map(.trials) | add) | round)%" +
        " (key tokens \((map(.token_accuracy * .trials) | add) * 100 / (map(.trials) | add) | round)%" +
        (if $full | not
         then "; \((map(.memory_correct) | add))/\((map(.memory_trials) | add)) through memory" else "" end) + ")"
      ) | join(", ")) as $row
      | "| \($v) | \(.trials) | \($row) |"' "$OUT/$variant$tag.json"
  done
}

case "$WHAT" in
  comet) run comet "$LENGTHS" "$TRIALS" "$DEPTHS" --adapter "$ADAPTER" ;;
  comet-16k) BUDGET="${BUDGET:-2048}" run comet-16k 16384 "$TRIALS" "$DEPTHS" --adapter "$ADAPTER" ;;
  full-attention) BATCH=1 run full-attention "$FULL_LENGTHS" "$FULL_TRIALS" "$FULL_DEPTHS" --full-attention ;;
  ablations)
    for variant in ${ABLATIONS:-no-gate no-temp no-global no-memory}; do
      case $variant in
        no-memory) flags=(--no-global --no-temp) ;;
        no-gate | no-temp | no-global) flags=("--$variant") ;;
        *) echo "unknown ablation $variant" >&2; exit 2 ;;
      esac
      run "$variant" "$ABLATION_LENGTHS" "$ABLATION_TRIALS" "$DEPTHS" --adapter "$ADAPTER" "${flags[@]}"
    done ;;
  table) table | tee "$OUT/table${TAG:-}.md" ;;
  progress) BATCH=8 grid "$3" --adapter "$2" "${@:4}" ;;
  retention)
    SEED=11 BATCH=8 run "retention-$3" 2048,4096,16384 8 0,0.5 --adapter "$2" "${@:4}" ;;
  progress-full) BATCH=1 grid full-attention --full-attention ;;
  fresh) BATCH=8 grid "$2" --comet --chunk-size 128 --memory-slots 16 "${@:3}" ;;
  all)
    "$0" comet; "$0" full-attention; "$0" ablations; "$0" table ;;
  *) echo "usage: $0 [comet|comet-16k|full-attention|ablations|table|progress DIR NAME [FLAGS]|progress-full|retention DIR NAME [FLAGS]|fresh NAME FLAGS|all]" >&2; exit 2 ;;
esac
