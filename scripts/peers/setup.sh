#!/usr/bin/env bash
# Installs the peer programs for the side-by-side CPU benchmark (llama.cpp via node-llama-cpp, and
# PyTorch + transformers) and prepares their inputs, all under ${COMET_CACHE:-~/.cache/comet}/peers/:
#   node/                                 npm i -E node-llama-cpp@3.21.1 (prebuilt CPU binaries)
#   venv/                                 python venv with scripts/peers/requirements.txt
#   SmolLM2-135M-Instruct.F32.gguf        the packaged Q4_1 GGUF with every tensor dequantized to F32
#   smollm2-hf/                           the same weights as a transformers directory (f32 safetensors)
#   tokens.json                           first 40,000 token ids of haystack/paul_graham_essays.txt
# Idempotent: each step is skipped when its output is already there (and, for the installs, at the
# pinned version). Needs: node + npm, python3 (3.11), network access to the npm registry and PyPI,
# and the assets from scripts/fetch_assets.sh (smollm2 GGUF, haystack text).
# Env: COMET_CACHE, PYTHON (default python3), PEERS_FORCE=1 to redo the generated files.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${COMET_CACHE:-$HOME/.cache/comet}
PEERS=$CACHE/peers
Q4=$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
TEXT=$CACHE/haystack/paul_graham_essays.txt
F32=$PEERS/SmolLM2-135M-Instruct.F32.gguf
HF=$PEERS/smollm2-hf
TOKENS=$PEERS/tokens.json
NLC_VERSION=3.21.1
N_TOKENS=40000
PY=${PYTHON:-python3}
FORCE=${PEERS_FORCE:-0}

t0=$(date +%s)
say() { printf '[peers/setup %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

for f in "$Q4" "$TEXT"; do
  [ -f "$f" ] || { echo "missing $f: run scripts/fetch_assets.sh first" >&2; exit 1; }
done
mkdir -p "$PEERS"

# ---- 1. llama.cpp through node-llama-cpp ------------------------------------------------------------
have_nlc=$(node -p "require('$PEERS/node/node_modules/node-llama-cpp/package.json').version" 2>/dev/null || true)
if [ "$have_nlc" != "$NLC_VERSION" ]; then
  say "npm i -E node-llama-cpp@$NLC_VERSION (have: ${have_nlc:-none})"
  mkdir -p "$PEERS/node"
  [ -f "$PEERS/node/package.json" ] || echo '{"name":"comet-peers","private":true}' > "$PEERS/node/package.json"
  # The prebuilt binaries come as npm packages (@node-llama-cpp/linux-x64, ...); never try to
  # download or build llama.cpp from source in the postinstall step.
  (cd "$PEERS/node" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm i -E --no-audit --no-fund "node-llama-cpp@$NLC_VERSION")
else
  say "node-llama-cpp $NLC_VERSION already installed"
fi
# Check that the prebuilt CPU binary loads on this machine (a file, not `node -e`: node-llama-cpp
# forks a test process that inherits node's flags).
cat > "$PEERS/node/check.mjs" <<'JSEOF'
import { getLlama } from "node-llama-cpp";
const l = await getLlama({ gpu: false, build: "never" });
console.log(`[peers/setup] llama.cpp ${l.llamaCppRelease.repo}@${l.llamaCppRelease.release} ${l.buildType}: ${l.systemInfo}`);
await l.dispose();
JSEOF
(cd "$PEERS/node" && node check.mjs)

# ---- 2. python venv ---------------------------------------------------------------------------------
VPY=$PEERS/venv/bin/python
[ -x "$VPY" ] || { say "creating venv with $($PY --version)"; "$PY" -m venv "$PEERS/venv"; }
pins_ok() {
  "$VPY" - "$HERE/requirements.txt" <<'PYEOF'
import sys, importlib.metadata as md
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = None
    if have is None or have.split("+")[0] != want:
        bad.append(f"{name} {have} != {want}")
if bad:
    print("[peers/setup] not at the pinned versions: " + ", ".join(bad))
    sys.exit(1)
PYEOF
}
if ! pins_ok; then
  torch_pin=$(grep -E '^torch==' "$HERE/requirements.txt")
  if ! "$VPY" -c "import importlib.metadata as m, sys; sys.exit(m.version('torch').split('+')[0] != '${torch_pin#torch==}')" 2>/dev/null; then
    say "pip install $torch_pin from the PyTorch CPU index (falls back to PyPI)"
    "$VPY" -m pip install --retries 0 --timeout 20 "$torch_pin" --index-url https://download.pytorch.org/whl/cpu \
      || { say "CPU index unreachable: plain PyPI torch (CUDA build; used on CPU)"; "$VPY" -m pip install "$torch_pin"; }
  fi
  say "pip install -r requirements.txt"
  "$VPY" -m pip install -r "$HERE/requirements.txt"
  pins_ok
else
  say "venv packages at the pinned versions"
fi

# ---- 3. F32 GGUF ------------------------------------------------------------------------------------
if [ "$FORCE" = 1 ] || [ ! -s "$F32" ] || [ "$Q4" -nt "$F32" ]; then
  say "dequantizing $(basename "$Q4") -> $(basename "$F32")"
  "$VPY" "$HERE/f32_gguf.py" "$Q4" "$F32"
else
  say "$(basename "$F32") already there"
fi

# ---- 4. HF directory + token ids ----------------------------------------------------------------------
if [ "$FORCE" = 1 ] || [ ! -s "$HF/model.safetensors" ] || [ ! -s "$HF/config.json" ] || [ ! -s "$TOKENS" ] \
   || [ "$F32" -nt "$HF/model.safetensors" ] || [ "$TEXT" -nt "$TOKENS" ]; then
  say "writing $HF and $TOKENS"
  "$VPY" "$HERE/make_hf.py" --gguf "$F32" --out "$HF" --text "$TEXT" --tokens-out "$TOKENS" --n-tokens "$N_TOKENS"
else
  say "$(basename "$HF")/ and $(basename "$TOKENS") already there"
fi

say "done: $PEERS"
