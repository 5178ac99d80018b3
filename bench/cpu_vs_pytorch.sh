#!/usr/bin/env bash
# Side-by-side CPU training throughput: Nanodecoder (`nanodecoder bench train`) against PyTorch
# (`bench/pytorch_gpt.py`, same model, optimizer and FLOP count), run alternately in one session.
#
#   bench/cpu_vs_pytorch.sh                      # workloads A B C, 2 rounds each, 30 timed steps
#   WORKLOADS="A B" ROUNDS=3 STEPS=20 bench/cpu_vs_pytorch.sh
#   BF16=1 WORKLOADS=B bench/cpu_vs_pytorch.sh   # also bf16: ours --precision bf16, PyTorch under autocast
#
# Dense workloads (A, B) also run with --compile (the first step recorded, later ones replayed).
# Prints, per workload and implementation, the median over rounds of the median step time, and
# the ratios ours/PyTorch for tokens/s and peak RSS. Builds the release binary if needed; the
# Python script makes its own venv (.venv-bench) with torch's CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKLOADS=${WORKLOADS:-"A B C"}
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-30}
WARMUP=${WARMUP:-5}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
BIN=${NANODECODER_BIN:-.build/release/nanodecoder}
[ -x "$BIN" ] || swift build -c release
out=$(mktemp)
# One peak for both sides' MFU: ours, measured once here.
for w in $WORKLOADS; do
  for r in $(seq "$ROUNDS"); do
    echo "workload $w, round $r: nanodecoder" >&2
    "$BIN" bench train --workload "$w" --steps "$STEPS" --warmup "$WARMUP" --data "$DATA" --json 2>/dev/null >> "$out"
    if [ "$w" != C ]; then
      echo "workload $w, round $r: nanodecoder --compile" >&2
      "$BIN" bench train --workload "$w" --steps "$STEPS" --warmup "$WARMUP" --data "$DATA" --compile --json 2>/dev/null >> "$out"
    fi
    echo "workload $w, round $r: pytorch" >&2
    python3 bench/pytorch_gpt.py --workload "$w" --steps "$STEPS" --warmup "$WARMUP" --data "$DATA" --json 2>/dev/null >> "$out"
    if [ "${BF16:-0}" = 1 ]; then
      echo "workload $w, round $r: nanodecoder --precision bf16" >&2
      "$BIN" bench train --workload "$w" --steps "$STEPS" --warmup "$WARMUP" --data "$DATA" --precision bf16 --json 2>/dev/null >> "$out"
      echo "workload $w, round $r: pytorch --autocast bf16" >&2
      python3 bench/pytorch_gpt.py --workload "$w" --steps "$STEPS" --warmup "$WARMUP" --data "$DATA" --autocast bf16 --json 2>/dev/null >> "$out"
    fi
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
print(f"{'workload':8} {'impl':20} {'ms/step':>9} {'tokens/s':>9} {'GFLOP/s':>8} {'MFU':>6} {'RSS MB':>7} {'loss':>6}")
for w in sorted({r["workload"] for r in rows}):
    med = {}
    for impl in ("nanodecoder", "nanodecoder-compiled", "pytorch", "nanodecoder-bf16", "pytorch-bf16"):
        rs = [r for r in rows if r["workload"] == w and r["impl"] + ("-bf16" if r.get("precision", "fp32") != "fp32" else "") == impl]
        if not rs:
            continue
        m = {k: statistics.median(r[k] for r in rs) for k in ("ms_per_step", "tokens_per_s", "gflops", "mfu", "peak_rss_mb", "loss")}
        med[impl] = m
        print(f"{w:8} {impl:20} {m['ms_per_step']:9.1f} {m['tokens_per_s']:9.0f} {m['gflops']:8.1f} {100*m['mfu']:5.1f}% {m['peak_rss_mb']:7.0f} {m['loss']:6.3f}")
    for impl, peer in (("nanodecoder", "pytorch"), ("nanodecoder-compiled", "pytorch"), ("nanodecoder-bf16", "pytorch"),
                       ("nanodecoder-bf16", "pytorch-bf16")):
        b = med.get(peer)
        if b and impl in med:
            a = med[impl]
            print(f"{w:8} {impl}/{peer}: tokens/s {a['tokens_per_s']/b['tokens_per_s']:.2f}x, peak RSS {a['peak_rss_mb']/b['peak_rss_mb']:.2f}x")
PY
rm -f "$out"
