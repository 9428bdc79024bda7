#!/usr/bin/env bash
# What a span global memory keeps: reads one 1,024-token passkey input of the held-out
# Bible (needle at depth 0.5, seed 7) with a trained adapter, COMET_TRACE_GLOBAL set, and
# writes per chunk and layer the gate (share of the old state kept) and the span start with
# its probability to results/smollm2-comet/gate-trace-NAME.json.
#
# Usage: scripts/smollm2_gate_trace.sh ADAPTER_DIR NAME [FLAGS]   (an adapter with a span
#   global memory; FLAGS, e.g. --global-source shared_span, change its stored config). With
#   shared_span each layer's entry also holds the new span's salience and the kept one's;
#   with cross_chunk_span a start counts from the first of the previous chunk's last 15
#   tokens (start 15 is the chunk's first token).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 ADAPTER_DIR NAME [FLAGS]" >&2; exit 2; }
ADAPTER_DIR=$1 NAME=$2
shift 2
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
cargo build --release -p comet-cli
COMET="${CARGO_TARGET_DIR:-target}/release/comet"
bash scripts/fetch_assets.sh kjv >/dev/null
TRACE=$(mktemp)
COMET_TRACE_GLOBAL=1 "$COMET" eval passkey --model "$("$COMET" fetch)" --adapter "$ADAPTER_DIR" "$@" \
  --digits 5 --lengths 1024 --depths 0.5 --trials 1 --seed 7 --batch-size 1 \
  --haystack "$CACHE/haystack/kjv_bible.txt" --json "$TRACE.json" 2> "$TRACE" >/dev/null
python3 - "$TRACE" "${ADAPTER_DIR/#"$CACHE"/\${COMET_CACHE\}}" "results/smollm2-comet/gate-trace-$NAME.json" <<'PY'
import json, re, sys
trace, adapter, out = sys.argv[1:]
lines = [l for l in open(trace) if l.startswith("global ")]
# The first chunk has no old state, so no gate: the span lines before the first gate are
# its layers' and the second chunk's first layer's.
first_gate = next(i for i, l in enumerate(lines) if l.startswith("global gate"))
layers = sum(l.startswith("global span") for l in lines[:first_gate]) - 1
chunks, current = [], None
for line in lines:
    if m := re.match(r"global span start (\d+) p ([\d.]+)", line):
        current = {"start": int(m[1]), "p": float(m[2]), "gate": None}
        if not chunks or len(chunks[-1]) == layers:
            chunks.append([])
        chunks[-1].append(current)
    elif m := re.match(r"global salience ([-\d.]+) kept ([-\d.]+)", line):
        current["salience"], current["kept"] = float(m[1]), float(m[2])
    elif m := re.match(r"global gate ([\d.]+)", line):
        current["gate"] = float(m[1])
json.dump({"adapter": adapter, "input": "1,024 tokens of kjv_bible.txt, needle at 0.5, seed 7",
           "chunks": chunks}, open(out, "w"), indent=1)
gates = [l["gate"] for c in chunks[1:] for l in c]
print(f"{out}: {len(chunks)} chunks x {layers} layers; gates {min(gates):.3f}-{max(gates):.3f}, "
      f"saturated (<0.01 or >0.99) {sum(g < 0.01 or g > 0.99 for g in gates)}/{len(gates)}; "
      f"largest start probability {min(l['p'] for c in chunks for l in c):.2f}-"
      f"{max(l['p'] for c in chunks for l in c):.2f}")
PY
rm -f "$TRACE" "$TRACE.json" "$TRACE.png"
