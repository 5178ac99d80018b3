#!/usr/bin/env bash
# MoE throughput against the dense GPT with the same active parameters, measured in one run.
# configs/shakespeare-char-moe.yaml (8 experts, top-2, stride 2, MLP ratio 4) activates per token
# 2 experts in blocks 0 and 2 and one MLP in blocks 1 and 3: the same as a dense model whose MLPs
# are 6× wide (mlp_ratio 6). Usage: bench/moe_vs_dense.sh [iterations] (default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-2000}
BIN=.build/release/nanodecoder
swift build -c release >/dev/null
[ -f data/shakespeare_char/meta.json ] || "$BIN" prepare --input ../shared/data/tinyshakespeare.txt --out data/shakespeare_char
run() {  # name config overrides...
  local name=$1 cfg=$2; shift 2
  "$BIN" train --config "$cfg" --set output.name="$name" --set training.max_iters="$ITERS" --set lr_schedule.lr_decay_iters="$ITERS" "$@" --overwrite \
    | tee "/tmp/$name.log" | grep -E "^model:|^step $ITERS:|^done:"
}
run bench-dense-active configs/shakespeare-char.yaml --set model.mlp_ratio=6
run bench-moe configs/shakespeare-char-moe.yaml
dense=$(grep -oE '[0-9]+ tokens/s' /tmp/bench-dense-active.log | tail -1 | cut -d' ' -f1)
moe=$(grep -oE '[0-9]+ tokens/s' /tmp/bench-moe.log | tail -1 | cut -d' ' -f1)
echo "MoE / dense (same active parameters) throughput: $moe / $dense = $(python3 -c "print(f'{$moe/$dense:.2f}')")"
