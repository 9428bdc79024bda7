#!/usr/bin/env python3
"""Builds the long document of the README's main job: the passkey task line, the first
~150 KB of the King James Bible (the corpus kept out of training, fetched by
`scripts/fetch_assets.sh kjv`) and a pass key hidden after its first chapter.

Usage: python3 scripts/make_demo_document.py [KJV_TXT] [OUT]
Deterministic: the same corpus file gives the same document.
"""
import os
import sys

TASK = ("There is an important info hidden inside a lot of irrelevant text. "
        "Find it and memorize them. I will quiz you about the important information there.")
KEY = "68413"
NEEDLE = f"The pass key is {KEY}. Remember it. {KEY} is the pass key."
TARGET_BYTES = 150_000

cache = os.environ.get("COMET_CACHE", os.path.expanduser("~/.cache/comet"))
source = sys.argv[1] if len(sys.argv) > 1 else f"{cache}/haystack/kjv_bible.txt"
out = sys.argv[2] if len(sys.argv) > 2 else "assets/documents/kjv-passkey.txt"

chapters = open(source, encoding="utf-8").read().split("\n\n")
text, size = [], 0
for chapter in chapters:
    if size >= TARGET_BYTES:
        break
    text.append(chapter.strip())
    size += len(chapter)
# The needle closes the first chapter: near the beginning, far from the question.
text[0] = f"{text[0]} {NEEDLE}"
with open(out, "w", encoding="utf-8") as f:
    f.write(TASK + " " + "\n\n".join(text) + "\n")
print(f"wrote {out}: {os.path.getsize(out)} bytes, key {KEY} after chapter 1 of {len(text)}")
