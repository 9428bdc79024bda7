#!/usr/bin/env bash
# Read the bundled 38,000-token document into a saved memory once (`comet ingest`), then
# answer a question about its first pages from that memory alone (`comet generate
# --memory`), with the committed SmolLM2 CoMeT adapter. The transcript (commands, answer,
# throughput, the snapshot's size) goes to results/smollm2-comet/ingest_memory.txt.
# Environment: ADAPTER (the committed one), DOC (assets/documents/kjv-passkey.txt),
#   SNAPSHOT (where the memory is saved; default in $COMET_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"
ADAPTER="${ADAPTER:-assets/adapters/smollm2-comet}"
DOC="${DOC:-assets/documents/kjv-passkey.txt}"
SNAPSHOT="${SNAPSHOT:-$CACHE/kjv-passkey.cmem}"
PROMPT=$'\nWhat is the pass key? The pass key is'
OUT=results/smollm2-comet/ingest_memory.txt
cargo build --release -p comet-cli
COMET="${CARGO_TARGET_DIR:-target}/release/comet"
mkdir -p "$(dirname "$SNAPSHOT")"
{
  echo "\$ comet ingest --adapter $ADAPTER --input $DOC --save $SNAPSHOT"
  "$COMET" ingest --adapter "$ADAPTER" --input "$DOC" --save "$SNAPSHOT" 2>&1
  echo
  echo "\$ comet generate --adapter $ADAPTER --memory $SNAPSHOT --prompt $(printf %q "$PROMPT") --max-new-tokens 6"
  "$COMET" generate --adapter "$ADAPTER" --memory "$SNAPSHOT" --prompt "$PROMPT" \
    --max-new-tokens 6 2>&1
  echo
  echo "The key hidden after chapter 1 of $DOC is $(grep -oPm1 'pass key is \K[0-9]+' "$DOC")."
  echo "2-core CPU, release profile, $(date -u +%Y-%m-%d)."
} | sed "s|$CACHE/|\$COMET_CACHE/|g" | tee "$OUT" # no machine paths in the transcript
