#!/usr/bin/env bash
# Trains the SmolLM2-135M-Instruct CoMeT adapter (LoRA on attention + memory + special
# embeddings, frozen base) through the curriculum in assets/recipes/smollm2-comet/:
#   stage1  256-token passkey inputs, the needle mostly in the first of two 128-token chunks
#   stage2  512 tokens (4 chunks), needles up to 70% deep, some samples with 3 named needles
#   stage3  1,024 tokens (8 chunks)
#   stage4  2,048 tokens (16 chunks), some steps with smaller chunks
# Each stage continues from the previous stage's adapter; every stage resumes exactly from
# its checkpoint (in $COMET_CACHE/runs/), so re-running the script goes on where it stopped.
# Haystacks: Paul Graham essays, State of the Union addresses, Moby Dick, Jane Austen; the
# King James Bible is kept out of training for evaluation.
#
# Usage: scripts/train_smollm2_comet.sh [FIRST_STAGE] [LAST_STAGE]   (default: where the run
#        stands, 4)
#   CUDA=1  builds with the cuda feature and multiplies batch sizes by GPU_BATCH (8).
# A run stopped mid-way is committed under assets/runs/smollm2-comet/ (stageN-adapter/: a
# finished stage's adapter, which the next stage starts from; stageN-checkpoint/: the stage
# in progress); they are copied into $COMET_CACHE/runs/ when missing there, and the script
# starts at the latest stage with a checkpoint, so a fresh machine goes on where the last
# one stopped. At the end the last stage's adapter is copied to assets/adapters/smollm2-comet/.
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=assets/recipes/smollm2-comet
COMMITTED=assets/runs/smollm2-comet
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
export COMET_CACHE="$CACHE"
# Committed progress into the cache (never over a newer local run). The run goes on at the
# stage with a checkpoint, else after the last stage with a finished adapter.
latest=1
for stage in 1 2 3 4; do
  run="$CACHE/runs/smollm2-comet-stage$stage"
  if [ -d "$COMMITTED/stage$stage-adapter" ] && [ ! -d "$run/adapter" ]; then
    mkdir -p "$run" && cp -r "$COMMITTED/stage$stage-adapter" "$run/adapter"
  fi
  if [ -d "$COMMITTED/stage$stage-checkpoint" ] && [ ! -d "$run/checkpoint" ]; then
    mkdir -p "$run" && cp -r "$COMMITTED/stage$stage-checkpoint" "$run/checkpoint"
    cp "$COMMITTED/stage$stage-train_log.jsonl" "$run/train_log.jsonl" 2>/dev/null || true
  fi
  if [ -d "$run/checkpoint" ]; then
    latest=$stage
  elif [ -d "$run/adapter" ]; then
    latest=$((stage + 1))
  fi
done
FIRST="${1:-$latest}"
LAST="${2:-4}"
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
for stage in $(seq "$FIRST" "$LAST"); do
  config="$RECIPE/stage$stage.json"
  if [ "${CUDA:-0}" = 1 ]; then
    mkdir -p "$CACHE/runs"
    jq --argjson k "${GPU_BATCH:-8}" '.batch_size *= $k' "$config" > "$CACHE/runs/stage$stage-cuda.json"
    config="$CACHE/runs/stage$stage-cuda.json"
  fi
  "$COMET" train --config "$config" --resume
  # Interrupted (Ctrl-C writes a checkpoint and exits cleanly): the stage is not done.
  at=$(jq .step "$CACHE/runs/smollm2-comet-stage$stage/checkpoint/trainer.json")
  if [ "$at" -lt "$(jq .steps "$config")" ]; then
    echo "stage $stage stopped at step $at; run the script again to go on" >&2
    exit 0
  fi
done
rm -rf assets/adapters/smollm2-comet.tmp
cp -r "$CACHE/runs/smollm2-comet-stage$LAST/adapter" assets/adapters/smollm2-comet.tmp
rm -rf assets/adapters/smollm2-comet
mv assets/adapters/smollm2-comet.tmp assets/adapters/smollm2-comet
echo "adapter: assets/adapters/smollm2-comet" >&2
