#!/usr/bin/env bash
# The fuzzing harness (tests/fuzz.rs) for longer than CI's 48 cases a parser, under an 8 GB
# address-space limit so that an allocation sized by a corrupt count aborts the run instead
# of swapping. Writes results/fuzz/summary.json: cases and refusals per parser, 0 panics
# (any panic, abort or limit breach fails the run and writes nothing).
#
# Usage: scripts/fuzz.sh [CASES]   (default 5000; PROPTEST_RNG_SEED picks other cases)
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="${1:-5000}"
SEED="${PROPTEST_RNG_SEED:-20261201}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --test fuzz --no-run
start=$(date +%s.%N)
(ulimit -v 8000000; COMET_FUZZ_CASES="$CASES" PROPTEST_RNG_SEED="$SEED" RUST_BACKTRACE=0 \
  cargo test --test fuzz -- --nocapture --test-threads 1) > "$log" 2>&1 || { tail -40 "$log" >&2; exit 1; }
end=$(date +%s.%N)
mkdir -p results/fuzz
grep -o 'fuzz [^:]*: [0-9]* cases, [0-9]* refused' "$log" | sed -E 's/^fuzz (.*): ([0-9]+) cases, ([0-9]+) refused.*/\1\t\2\t\3/' |
  jq -R -s --arg seed "$SEED" --arg commit "$(git rev-parse HEAD)" --argjson wall "$(echo "$end - $start" | bc)" '
    split("\n") | map(select(length > 0) | split("\t") | {parser: .[0], cases: (.[1] | tonumber), refused: (.[2] | tonumber)})
    | {seed: ($seed | tonumber), commit: $commit, address_space_limit_gb: 8, wall_seconds: $wall,
       total_cases: (map(.cases) | add), panics: 0, parsers: .}' > results/fuzz/summary.json
jq -c '{total_cases, panics, wall_seconds}' results/fuzz/summary.json >&2
