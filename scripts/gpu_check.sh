#!/usr/bin/env bash
# The GPU check: everything that has only ever run on the CPU, run once on one NVIDIA GPU
# with the `cuda` feature (under 8 minutes after the build):
#   1. the backend-generic test suites on CUDA: parity with transformers' logits (parity),
#      CoMeT decoding = training forward, snapshots, padding, ablations (comet_memory, native_memory), bf16
#      logits far into a sequence (bf16), adapters and training (adapters, training);
#   2. f32 and bf16 CoMeT training steps (a small byte-level model, passkey samples of 512
#      tokens in chunks of 128): losses and text tokens/s;
#   3. prefill of a random Qwen3-0.6B-sized model: CoMeT against full attention up to the
#      longest length full attention fits (or takes over MAX_SECONDS), and CoMeT over
#      1,000,000 tokens in one run.
# Writes $OUT (results/gpu-check): tests.txt, train-{f32,bf16}/train_log.jsonl,
# bench/bench.{json,png}, long.json and summary.json.
#
# Usage: scripts/gpu_check.sh            (needs an NVIDIA driver; builds with --features cuda)
#        DRY=1 scripts/gpu_check.sh      (the same steps on the CPU backend with small sizes,
#                                         into target/gpu-check-dry; CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${DRY:-0}" = 1 ]; then
  FEATURES=()
  OUT="${OUT:-${CARGO_TARGET_DIR:-target}/gpu-check-dry}"
  CONFIG=assets/configs/tiny-random/config.json
  LENGTHS="${LENGTHS:-1024,2048}"
  LONG="${LONG:-8192}"
  STEPS=3
  CHUNK=512
  TESTS=(--test bf16 --test comet_memory --test native_memory)
else
  FEATURES=(--no-default-features --features cuda)
  OUT="${OUT:-results/gpu-check}"
  CONFIG=assets/configs/qwen3-0.6b-random/config.json
  LENGTHS="${LENGTHS:-4096,8192,16384,32768,65536,131072,262144}"
  LONG="${LONG:-1000000}"
  STEPS=20
  CHUNK=2048
  TESTS=(--test parity --test comet_memory --test native_memory --test bf16 --test adapters --test training)
fi
MAX_SECONDS="${MAX_SECONDS:-60}"
mkdir -p "$OUT"
OUT_ABS="$(cd "$OUT" && pwd)"
start=$(date +%s)
# One dev-profile build (dependencies at opt-level 3) with the workspace's one feature set
# serves the tests and the CLI (and, in CI, reuses the test command's build).
cargo build --workspace "${FEATURES[@]}"
COMET="${CARGO_TARGET_DIR:-target}/debug/comet"
built=$(date +%s)

# 1. Tests on the selected backend (failures are recorded, the check goes on).
set +e
cargo test --workspace "${FEATURES[@]}" "${TESTS[@]}" -- --test-threads 1 > "$OUT/tests.txt" 2>&1
tests_rc=$?
set -e
tested=$(date +%s)

# 2. f32 and bf16 training steps of the same recipe.
for precision in f32 bf16; do
  rm -rf "$OUT/train-$precision"
  jq -n --arg out "$OUT_ABS/train-$precision" --arg model "$PWD/assets/recipes/passkey-small/model.json" \
    --arg precision "$precision" --argjson steps "$STEPS" '{
      model: {scratch: {config: $model, seed: 1}},
      comet: {chunk_size: 128, memory_slots: 8, compression_stride: 8, temp_budget: 16, adapter_rank: 8},
      data: [{kind: "passkey", min_length: 512, max_length: 512, digits: 1}],
      steps: $steps, batch_size: 8, lr: 0.001, warmup_steps: 2, grad_clip: 1.0,
      checkpoint_every: 1000, log_every: 1, seed: 1, precision: $precision, out: $out}' \
    > "$OUT/train-$precision.json"
  "$COMET" train --config "$OUT/train-$precision.json" > /dev/null 2> "$OUT/train-$precision.err" \
    || echo "training in $precision failed: $(tail -n 1 "$OUT/train-$precision.err")" >&2
done
trained=$(date +%s)

# 3. Prefill: CoMeT against full attention, then CoMeT over a very long input.
COMET_SIZES=(--chunk-size "$CHUNK" --memory-slots 64 --compression-stride 8 --temp-budget 256)
"$COMET" bench --random-config "$CONFIG" --lengths "$LENGTHS" --modes comet,full \
  --max-seconds "$MAX_SECONDS" "${COMET_SIZES[@]}" --out "$OUT/bench"
"$COMET" bench-run --spec "{\"random_config\": \"$CONFIG\", \"mode\": \"comet\", \"length\": $LONG,
  \"comet\": {\"chunk_size\": $CHUNK, \"memory_slots\": 64, \"compression_stride\": 8, \"temp_budget\": 256, \"adapter_rank\": 8}}" \
  > "$OUT/long.json" || echo '{"error": "the long CoMeT run failed"}' > "$OUT/long.json"
done_at=$(date +%s)

train_summary() { # precision
  local log="$OUT/train-$1/train_log.jsonl"
  [ -f "$log" ] || { echo null; return; }
  jq -s '{steps: length, first_loss: .[0].loss, last_loss: .[-1].loss,
          tokens_per_second: ((.[1:] | map(.tokens) | add) / (.[1:] | map(.seconds) | add))}' "$log"
}
jq -n --arg backend "$([ "${DRY:-0}" = 1 ] && echo flex || echo cuda)" \
  --arg gpu "$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo none)" \
  --arg commit "$(git rev-parse HEAD)" --arg config "$CONFIG" \
  --argjson tests_rc "$tests_rc" \
  --arg tests "$(grep -E '^test result|^test .* (ok|FAILED)$' "$OUT/tests.txt" || true)" \
  --argjson f32 "$(train_summary f32)" --argjson bf16 "$(train_summary bf16)" \
  --slurpfile bench "$OUT/bench/bench.json" --slurpfile long "$OUT/long.json" \
  --argjson seconds "{\"build\": $((built - start)), \"tests\": $((tested - built)), \"training\": $((trained - tested)), \"prefill\": $((done_at - trained))}" \
  '{backend: $backend, gpu: $gpu, commit: $commit, seconds: $seconds,
    tests: {exit_code: $tests_rc, lines: ($tests | split("\n"))},
    training: {f32: $f32, bf16: $bf16},
    prefill: {config: $config, bench: $bench[0], long: $long[0]}}' > "$OUT/summary.json"
echo "wrote $OUT/summary.json (tests exit code $tests_rc)" >&2
# The dry run is a test: any failure fails it.
if [ "${DRY:-0}" = 1 ]; then
  [ "$tests_rc" = 0 ] || { echo "tests failed: $OUT/tests.txt" >&2; exit 1; }
  for precision in f32 bf16; do
    [ -s "$OUT/train-$precision/train_log.jsonl" ] || { echo "training in $precision failed" >&2; exit 1; }
  done
  jq -e '.failures | length == 0' "$OUT/bench/bench.json" > /dev/null || { echo "a prefill run failed" >&2; exit 1; }
  jq -e '.tokens_per_s > 0' "$OUT/long.json" > /dev/null || { echo "the long run failed" >&2; exit 1; }
fi
