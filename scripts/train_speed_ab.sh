#!/usr/bin/env bash
# Training speed of this checkout against an earlier commit, in one run on one machine: both
# builds train the same STEPS steps of the SmolLM2 CoMeT stage-4 recipe (1,024-2,048-token
# passkey inputs, 8-16 chunks, temporary budget 256, LoRA from the stage-3 adapter), one after
# the other, from the same start; the losses must agree and the time per token is compared.
#
# Usage: scripts/train_speed_ab.sh OLD_REV [STEPS]   (default 3 steps)
# The old commit builds in a worktree under $TMPDIR with its own target directory (a full
# release build, ~15 minutes on 2 cores). Run it on an idle machine.
# Writes results/smollm2-comet/train_speed_ab.json.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD_REV="${1:?usage: $0 OLD_REV [STEPS]}"
STEPS="${2:-3}"
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
export COMET_CACHE="$CACHE"
work="${TMPDIR:-/tmp}/comet-ab"
mkdir -p "$work"
bash scripts/fetch_assets.sh smollm2 >/dev/null
bash scripts/fetch_assets.sh corpora >/dev/null
# The recipe starts from stage 3's adapter (committed; copied into the cache when missing).
if [ ! -d "$CACHE/runs/smollm2-comet-stage3/adapter" ]; then
  mkdir -p "$CACHE/runs/smollm2-comet-stage3"
  cp -r assets/runs/smollm2-comet/stage3-adapter "$CACHE/runs/smollm2-comet-stage3/adapter"
fi
cargo build --release -p comet-cli
new="${CARGO_TARGET_DIR:-target}/release/comet"
[ -d "$work/old" ] || git worktree add -f "$work/old" "$OLD_REV"
(cd "$work/old" && git checkout -q "$OLD_REV" && CARGO_TARGET_DIR="$work/target" cargo build --release -p comet-cli)
old="$work/target/release/comet"

for v in old new; do
  binary=$old
  [ "$v" = new ] && binary=$new
  rm -rf "$work/run-$v"
  jq --arg out "$work/run-$v" --argjson steps "$STEPS" \
    '.steps = $steps | .out = $out | .checkpoint_every = 1000' \
    assets/recipes/smollm2-comet/stage4.json > "$work/$v.json"
  "$binary" train --config "$work/$v.json" >&2
done
jq -n --arg old "$(git rev-parse --short "$OLD_REV")" --arg new "$(git rev-parse --short HEAD)" \
  --slurpfile a "$work/run-old/train_log.jsonl" --slurpfile b "$work/run-new/train_log.jsonl" '
  def rate(l): (l | map(.tokens) | add) / (l | map(.seconds) | add);
  {recipe: "assets/recipes/smollm2-comet/stage4.json", steps: ($a | length),
   old: {commit: $old, tokens_per_second: rate($a), losses: ($a | map(.loss))},
   new: {commit: $new, tokens_per_second: rate($b), losses: ($b | map(.loss))},
   speedup: (rate($b) / rate($a))}' > results/smollm2-comet/train_speed_ab.json
cat results/smollm2-comet/train_speed_ab.json
