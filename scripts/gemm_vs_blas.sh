#!/usr/bin/env bash
# The CPU matmul kernel (comet-kernels, the `gemm` crate underneath) against OpenBLAS
# (numpy's bundled build) and MKL (torch.mm) on the model's shapes: the projections of a
# 1,024-token step, the tied output head, and the one-row products of a decoding step. Same
# threads, best of several runs. Writes results/perf/gemm.json and gemm.md. Idle machine.
# Env: THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
P="${COMET_CACHE:-$HOME/.cache/comet}/peers"
bash scripts/peers/setup.sh
cargo build --release --example gemm_bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
RAYON_NUM_THREADS="$THREADS" "${CARGO_TARGET_DIR:-target}/release/examples/gemm_bench" --json > "$work/rows.jsonl"
"$P/venv/bin/python" scripts/peers/blas_bench.py --threads "$THREADS" >> "$work/rows.jsonl"
mkdir -p results/perf
jq -s --argjson threads "$THREADS" --arg commit "$(git rev-parse --short HEAD)" \
  '{threads: $threads, commit: $commit, versions: (map(select(.versions)) | first | .versions),
    rows: map(del(.versions))}' "$work/rows.jsonl" > results/perf/gemm.json
jq -r '"| shape (rows x d_in x d_out) | comet-kernels | OpenBLAS (numpy) | MKL (torch.mm) |",
  "|---|---:|---:|---:|",
  (.rows | group_by([.m, .k, .n, .transposed])[] |
    "| \(.[0].m) x \(.[0].k) x \(.[0].n)\(if .[0].transposed then " (tied head)" else "" end) | " +
    ([("comet-kernels", "OpenBLAS (numpy)", "MKL (torch.mm)") as $p | (map(select(.program == $p)) | first | .gflops | tostring)] | join(" | ")) + " |"),
  "",
  "GFLOP/s, \(.threads) threads, best of 5-20 runs after a warm-up; commit \(.commit); numpy \(.versions.numpy.version) (\(.versions.numpy.blas)), torch \(.versions.torch.version)."' \
  results/perf/gemm.json > results/perf/gemm.md
cat results/perf/gemm.md
