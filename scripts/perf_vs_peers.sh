#!/usr/bin/env bash
# comet side by side with llama.cpp and PyTorch on this CPU, in one run: the same token ids
# (the first N of Paul Graham's essays, HF tokenizer), the same f32 weights (SmolLM2-135M-
# Instruct's packaged Q4_1 GGUF dequantized to an F32 GGUF, read by comet and llama.cpp; its
# transformers copy for PyTorch), the same thread count.
#   inference vs llama.cpp (F32, and the Q4_1 file users run): prefill at 512 / 2,048 / 8,192
#     tokens, greedy decoding after each; comet with CoMeT memory: prefill of 32,768 tokens
#     and decoding after it;
#   training vs transformers + torch: one step (forward, backward, AdamW) on 1,024 tokens,
#     full and frozen base: tokens/s and peak memory;
#   the machine's fp32 GEMM peak (torch.mm), to report each figure as a fraction of it.
# Best of RUNS (default 3) each. Writes results/perf/cpu.json, cpu.png and cpu.md (the
# README's table). Run on an idle machine (both peers spin-wait in their thread pools):
# about 30 minutes on 2 cores. Env: THREADS (2), RUNS (3), LENGTHS, COMET_LENGTH (32768).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
RUNS="${RUNS:-3}"
LENGTHS="${LENGTHS:-512,2048,8192}"
COMET_LENGTH="${COMET_LENGTH:-32768}"
DECODE=32
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
P="$CACHE/peers"
OUT=results/perf
bash scripts/fetch_assets.sh smollm2 >/dev/null
bash scripts/fetch_assets.sh haystack >/dev/null
bash scripts/peers/setup.sh
cargo build --release -p comet-cli
COMET="${CARGO_TARGET_DIR:-target}/release/comet"
export RAYON_NUM_THREADS="$THREADS"
F32="$P/SmolLM2-135M-Instruct.F32.gguf"
Q41="$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
work=$(mktemp -d)
# Kept when something fails, so a 30-minute run can be combined again by hand.
trap 'status=$?; if [ $status -eq 0 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi' EXIT
mkdir -p "$OUT"

# comet generate, RUNS times per length: one JSON line each.
comet_generate() { # LABEL LENGTH [EXTRA ARGS...]
  local label=$1 n=$2; shift 2
  for r in $(seq "$RUNS"); do
    "$COMET" generate --model "$F32" --prompt-ids "$P/tokens.json" --prompt-tokens "$n" \
      --max-new-tokens "$DECODE" --ignore-eos --stats-json "$work/g.json" "$@" >/dev/null 2>"$work/g.err" \
      || { cat "$work/g.err" >&2; exit 1; }
    jq -c --arg tag "$label" --argjson n "$n" '{"label": $tag, "length": $n} + .' "$work/g.json"
  done >> "$work/comet_generate.jsonl"
}
# The cache in f16, as llama.cpp's (F16/F16, recorded in its JSON); and in f32.
for n in ${LENGTHS//,/ }; do
  echo "comet: $n tokens" >&2
  comet_generate plain "$n" --kv-cache f16
  comet_generate plain_f32_cache "$n" --kv-cache f32
done
echo "comet: $COMET_LENGTH tokens with CoMeT memory" >&2
comet_generate comet "$COMET_LENGTH" --comet

# comet train: one step = forward, backward, AdamW on one 1,024-token text sample (one chunk
# with its memory), steps after the first timed; peak RSS of the process.
for mode in full frozen_base; do
  echo "comet: training step, $mode" >&2
  jq -n --arg model "$F32" --arg text "$CACHE/haystack/paul_graham_essays.txt" --arg mode "$mode" \
    --arg out "$work/train-$mode" --argjson steps "$((RUNS + 1))" \
    '{model: {pretrained: $model}, mode: $mode,
      comet: {chunk_size: 1024, memory_slots: 16, compression_stride: 8, temp_budget: 32, adapter_rank: 8},
      data: [{kind: "text", path: $text, length: 1024}], steps: $steps, batch_size: 1, lr: 1e-5,
      warmup_steps: 0, checkpoint_every: 1000, log_every: 1, seed: 1, out: $out}' > "$work/train-$mode.json"
  /usr/bin/time -f "%M" -o "$work/train-$mode.rss" "$COMET" train --config "$work/train-$mode.json" \
    >/dev/null 2>"$work/train.err" || { cat "$work/train.err" >&2; exit 1; }
  jq -c --arg mode "$mode" --argjson rss_kib "$(tail -n 1 "$work/train-$mode.rss")" \
    '{mode: $mode, rss_kib: $rss_kib} + .' "$work/train-$mode/train_log.jsonl" >> "$work/comet_train.jsonl"
done

# llama.cpp with its flash attention (its default here) and without (faster decoding on
# some machines): each figure keeps the better of the two.
echo "llama.cpp: F32 (flash attention on, then off), then Q4_1" >&2
node scripts/peers/llama_cpp_bench.mjs --model "$F32" --tokens "$P/tokens.json" --lengths "$LENGTHS" \
  --decode "$DECODE" --threads "$THREADS" --runs "$RUNS" > "$work/llama_f32.json"
node scripts/peers/llama_cpp_bench.mjs --model "$F32" --tokens "$P/tokens.json" --lengths "$LENGTHS" \
  --decode "$DECODE" --threads "$THREADS" --runs "$RUNS" --flash-attn off > "$work/llama_f32_nofa.json"
node scripts/peers/llama_cpp_bench.mjs --model "$Q41" --tokens "$P/tokens.json" --lengths "$LENGTHS" \
  --decode "$DECODE" --threads "$THREADS" --runs "$RUNS" > "$work/llama_q41.json"
echo "PyTorch: GEMM peak, training steps" >&2
"$P/venv/bin/python" scripts/peers/torch_bench.py --hf "$P/smollm2-hf" --tokens "$P/tokens.json" \
  --threads "$THREADS" --runs "$RUNS" --length 1024 --skip infer > "$work/torch.json"

python3 scripts/peers/combine.py --work "$work" --out "$OUT/cpu.json" --markdown "$OUT/cpu.md" \
  --commit "$(git rev-parse --short HEAD)" --model "$F32" --threads "$THREADS" --runs "$RUNS"
"$COMET" plot-ratios "$OUT/cpu.json"
cat "$OUT/cpu.md"
