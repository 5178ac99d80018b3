#!/usr/bin/env bash
# Sets everything up and runs the main job on built-in defaults: prepare tiny Shakespeare
# (character level), train the small GPT (configs/shakespeare-char.yaml), then sample from it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release
BIN=.build/release/nanodecoder
INPUT=()
for f in ../shared/data/tinyshakespeare.txt data/tinyshakespeare.txt; do
  if [ -f "$f" ]; then INPUT=(--input "$f"); break; fi
done
# Without a local copy, prepare downloads tiny Shakespeare from its usual URL.
[ -f data/shakespeare_char/meta.json ] || "$BIN" prepare "${INPUT[@]}" --out data/shakespeare_char
"$BIN" train --config configs/shakespeare-char.yaml --overwrite
"$BIN" sample --checkpoint runs/shakespeare-char/best --prompt "ROMEO:" --max-new-tokens 500
