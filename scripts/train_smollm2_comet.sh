#!/usr/bin/env bash
# Trains the SmolLM2-135M-Instruct CoMeT adapter (LoRA on attention + memory + special
# embeddings, frozen base) through the curriculum in assets/recipes/smollm2-comet/:
#   stage1  256-token passkey inputs, the needle mostly in the first of two 128-token chunks
#   stage2  256-1,024 tokens (2-8 chunks), needles mostly in the first 30%, some samples with
#           3 named needles; from here on the memory gates train at 10x the memory's rate
#   stage3  256-2,048 tokens (2-16 chunks), needles anywhere (40% in the first 30%), and a
#           temporary budget of 256 entries: the whole input stays in the FIFO, so the
#           question learns to read its key from the compressed entries of any earlier chunk
#   stage4  1,024-2,048 tokens (8-16 chunks), budget 256, some steps with smaller chunks
#   stage5  512-2,048 tokens; most samples hide 6 named keys and ask for every one of them
#           (ask_all): six times the scored key digits per token, to sharpen the entries;
#           single-key reading got worse (a dead end, kept for the record)
#   stage6  from stage 4's adapter: LoRA grown onto the MLP (gate, up, down), 512-2,048
#           tokens, budget 256, 12% six-key ask_all samples
#   stage7  from stage 3's adapter: 60% cued recall (a 32-token passage from earlier in the
#           window, its first 4-12 tokens given, the rest scored: ~6x the scored tokens
#           read through memory per sample), 40% passkey; 512-2,048 tokens, budget 256
#   stage8  from stage 3's adapter: compression stride 4 (one entry per 4 text tokens, not 8),
#           budget 512 (the whole 2,048-token input), 40% cued recall, 60% passkey
#   stage9  fresh memory modules and LoRA, text-input entries (temp_source text_input: the
#           layer inputs of every text token, stride 1), budget 256 (two chunks); 384-768
#           tokens, 72% of needles in the first 30%, so most keys lie past the temporary
#           window and only the global memory can bring them
#   stage10 as stage 9 with stride 2 (budget 512, 256-1,024 tokens, 60% in the first 50%)
#   stage11 as stage 9 with global candidates pooled from the chunk's text-token layer
#           inputs (global_source text_pool), not taken from the readout outputs
#   stage12 as stage 9 with a span of 16 consecutive text-token layer inputs as the global
#           candidates, under one gate (global_source text_span)
#   stage13 from stage 12's adapter: 512-1,024 tokens, 80% of needles in the first 70%, so
#           a later needle must replace what the global memory holds
#   stage14 stage 13's data from fresh modules, 150 steps, the gates at the memory's rate
#   stage15 from stage 13's adapter: one span start shared by all layers and the salience
#           gate (global_source shared_span), 512-1,536 tokens
#   stage16 from stage 15's adapter: 1,024-4,096 tokens, 50 steps
#   stage17 from stage 15's adapter: 45% of needles placed across a chunk boundary
#           (`straddle`), 80 steps at half the rate
#   stage18 stage 17's data with spans that may start in the previous chunk's last 15
#           tokens (`cross_chunk_span`), from stage 15's adapter
# Each stage continues from the previous stage's adapter (stages 6-8 from earlier ones,
# stages 9-12 and 14 from fresh modules: separate experiments, run as `... 9 9`); every
# stage resumes exactly from its checkpoint (in $COMET_CACHE/runs/), so re-running the
# script goes on where it stopped.
# Haystacks: Paul Graham essays, State of the Union addresses, Moby Dick, Jane Austen; the
# King James Bible is kept out of training for evaluation.
#
# Usage: scripts/train_smollm2_comet.sh [FIRST_STAGE] [LAST_STAGE]   (default: where the run
#        stands, 8)
#   CUDA=1  builds with the cuda feature and multiplies batch sizes by GPU_BATCH (8).
#   GATE=0.9  accuracy-gated curriculum: after each stage its adapter reads GATE_TRIALS (16)
#           passkey inputs of the stage's length with the needle in an earlier chunk
#           (depths 0.1 and 0.5, a training corpus at a fresh seed, not the held-out Bible);
#           below GATE exact keys through memory, the stage runs again from its adapter
#           (round r: runs/smollm2-comet-stageN-round<r>, seed + r), at most ROUNDS (3)
#           more times, and the next stage starts from the last round. GATE=0 (default)
#           trains each stage once. Gate results: <run>/gate.json.
#   STEPS=N  every stage (and round) trains N steps instead of its recipe's: a quick check
#           of the pipeline, not a recipe.
# A run stopped mid-way is committed under assets/runs/smollm2-comet/ (stageN-adapter/: a
# finished stage's adapter, which the next stage starts from; stageN-checkpoint/: the stage
# in progress); they are copied into $COMET_CACHE/runs/ when missing there, and the script
# starts at the latest stage with a checkpoint, so a fresh machine goes on where the last
# one stopped. The committed adapter is stage 18's: `bash scripts/train_smollm2_comet.sh 18 18`
# trains it again from the committed stage 15 adapter (`15 15` first to redo that from the
# committed stage 13 adapter, `12 13` before it from fresh modules) and copies it to
# assets/adapters/smollm2-comet/ (INSTALL=1 by default only for runs ending at stage 18;
# INSTALL=1 installs any other run's last adapter).
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=assets/recipes/smollm2-comet
COMMITTED=assets/runs/smollm2-comet
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
export COMET_CACHE="$CACHE"
# Committed progress into the cache (never over a newer local run). The run goes on at the
# stage with a checkpoint, else after the last curriculum stage (1-8) with a finished
# adapter; the later experiments' adapters (stages 13, 15 and 18: the span memories) are copied too
# without moving where the default run starts.
latest=1
for stage in $(seq 1 18); do
  run="$CACHE/runs/smollm2-comet-stage$stage"
  if [ -d "$COMMITTED/stage$stage-adapter" ] && [ ! -d "$run/adapter" ]; then
    mkdir -p "$run" && cp -r "$COMMITTED/stage$stage-adapter" "$run/adapter"
  fi
  if [ -d "$COMMITTED/stage$stage-checkpoint" ] && [ ! -d "$run/checkpoint" ]; then
    mkdir -p "$run" && cp -r "$COMMITTED/stage$stage-checkpoint" "$run/checkpoint"
    cp "$COMMITTED/stage$stage-train_log.jsonl" "$run/train_log.jsonl" 2>/dev/null || true
  fi
  [ "$stage" -le 8 ] || continue
  if [ -d "$run/checkpoint" ]; then
    latest=$stage
  elif [ -d "$run/adapter" ]; then
    latest=$((stage + 1))
  fi
done
FIRST="${1:-$latest}"
LAST="${2:-8}"
if [ "$FIRST" -gt "$LAST" ]; then
  echo "every stage up to $LAST has finished (adapters in $CACHE/runs/); nothing to train" >&2
  exit 0
fi
bash scripts/fetch_assets.sh smollm2 >/dev/null
bash scripts/fetch_assets.sh haystack >/dev/null
bash scripts/fetch_assets.sh corpora >/dev/null
if [ "${CUDA:-0}" = 1 ]; then
  cargo build --release -p comet-cli --no-default-features --features cuda
else
  cargo build --release -p comet-cli
fi
COMET="${CARGO_TARGET_DIR:-target}/release/comet"
GATE="${GATE:-0}"
ROUNDS="${ROUNDS:-3}"
MODEL="$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# The stage's config with this machine's overrides: batch (CUDA), steps (STEPS), and for a
# round or a stage after one, where it starts and writes.
# Paths under the cache are written as ${COMET_CACHE}/..., so a checkpoint (which resumes
# only under the config as written) goes on from another machine or cache directory.
stage_config() { # STAGE OUT START_ADAPTER SEED_OFFSET -> path of the config to train
  local lit='${COMET_CACHE}'
  local stage=$1 out=${2/#"$CACHE"/$lit} start=${3/#"$CACHE"/$lit}
  local offset=$4 config="$CACHE/runs/stage$1-run.json"
  mkdir -p "$CACHE/runs"
  jq --argjson k "$([ "${CUDA:-0}" = 1 ] && echo "${GPU_BATCH:-8}" || echo 1)" \
    --arg out "$out" --arg start "$start" --argjson offset "$offset" --arg steps "${STEPS:-}" \
    '.batch_size *= $k | .out = $out | .seed += $offset
     | (if $start == "" then . else .adapter = $start end)
     | (if $steps == "" then . else .steps = ($steps | tonumber) end)' \
    "$RECIPE/stage$stage.json" > "$config"
  echo "$config"
}

# Trains one stage or round to its last step; exits (the run resumable) when interrupted.
train_to_end() { # CONFIG RUN_DIR
  "$COMET" train --config "$1" --resume
  # Interrupted (Ctrl-C writes a checkpoint and exits cleanly): not done.
  local at
  at=$(jq .step "$2/checkpoint/trainer.json")
  if [ "$at" -lt "$(jq .steps "$1")" ]; then
    echo "$(basename "$2") stopped at step $at; run the script again to go on" >&2
    exit 0
  fi
}

# Share of keys read exactly through memory (needle before the question's chunk) by the
# adapter in RUN_DIR at LENGTH tokens; written to RUN_DIR/gate.json.
gate_accuracy() { # RUN_DIR LENGTH
  "$COMET" eval passkey --model "$MODEL" --adapter "$1/adapter" --digits 5 --lengths "$2" \
    --depths 0.1,0.5 --trials "${GATE_TRIALS:-16}" --seed 4242 \
    --haystack "$CACHE/haystack/moby_dick.txt" --json "$1/gate.json" >/dev/null
  jq '[.cells[] | .memory_correct] as $c | [.cells[] | .memory_trials] as $t
      | if ($t | add) > 0 then ($c | add) / ($t | add) else 0 end' "$1/gate.json"
}

start=""  # the adapter the next stage starts from, when not its recipe's
for stage in $(seq "$FIRST" "$LAST"); do
  run="$CACHE/runs/smollm2-comet-stage$stage"
  # A gated round replaces the previous stage's adapter only where the recipe starts there.
  prev='${COMET_CACHE}'"/runs/smollm2-comet-stage$((stage - 1))/adapter"
  [ "$(jq -r .adapter "$RECIPE/stage$stage.json")" = "$prev" ] || start=""
  train_to_end "$(stage_config "$stage" "$run" "$start" 0)" "$run"
  start=""
  [ "$GATE" = 0 ] && continue
  length=$(jq '.data[0].max_length' "$RECIPE/stage$stage.json")
  for round in $(seq 0 "$ROUNDS"); do
    accuracy=$(gate_accuracy "$run" "$length")
    echo "stage $stage round $round: keys exact through memory at $length tokens: $accuracy (gate $GATE)" >&2
    if awk -v a="$accuracy" -v g="$GATE" 'BEGIN { exit !(a >= g) }' || [ "$round" = "$ROUNDS" ]; then
      break
    fi
    next="$CACHE/runs/smollm2-comet-stage$stage-round$((round + 1))"
    train_to_end "$(stage_config "$stage" "$next" "$run/adapter" $((round + 1)))" "$next"
    run="$next"
  done
  start="$run/adapter"
done
final="${start:-$CACHE/runs/smollm2-comet-stage$LAST/adapter}"
if [ "${INSTALL:-$([ "$LAST" = 18 ] && echo 1 || echo 0)}" != 1 ]; then
  echo "adapter: $final (not installed; INSTALL=1 copies it to assets/adapters/)" >&2
  exit 0
fi
rm -rf assets/adapters/smollm2-comet.tmp
cp -r "$final" assets/adapters/smollm2-comet.tmp
rm -rf assets/adapters/smollm2-comet
mv assets/adapters/smollm2-comet.tmp assets/adapters/smollm2-comet
echo "adapter: assets/adapters/smollm2-comet" >&2
