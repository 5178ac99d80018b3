#!/usr/bin/env bash
# The GPU checks and benchmarks, run on an NVIDIA machine from the repository root with the
# bundle that scripts/gpu_bundle.sh made (carried in .gpu-bundle/). Each phase fits in the device
# tool's 10-minute command limit; logs go to $OUT (or ./gpu-logs).
#
#   bash bench/gpu_session.sh check   # cuda info, kernel selftest, engine conformance (fp32, TF32),
#                                     # NCCL on this GPU (one rank),
#                                     # CUDAGPT train-check, engine training on cuda vs cpu and
#                                     # CUDA graph vs eager (50 steps each)
#   bash bench/gpu_session.sh train   # bf16 and fp16 runs on the GPU against fp32 (300 steps)
#   bash bench/gpu_session.sh speed   # GPT-2 124M: nanodecoder (bf16, TF32) vs PyTorch + torch.compile;
#                                     # bf16 with fp32-core attention; batch 32
#   bash bench/gpu_session.sh cpu     # this host's CPU: bench ops (bf16 matmul support) and workload B
set -uo pipefail
phase=${1:-check}
out=${OUT:-gpu-logs}
mkdir -p "$out"
# Unpacked outside the repository, so only the archive travels with the device tool's carry.
root=${TMPDIR:-/tmp}/nanodecoder-bundle
if [ ! -f "$root/.unpacked" ] || [ .gpu-bundle/bundle.tar.xz -nt "$root/.unpacked" ]; then
  rm -rf "$root" && mkdir -p "$root"
  python3 -c "import tarfile, sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .gpu-bundle/bundle.tar.xz "$root"
  touch "$root/.unpacked"
fi
export LD_LIBRARY_PATH="$root/lib:${LD_LIBRARY_PATH:-}:/usr/local/nvidia/lib64:/usr/local/cuda/lib64"
nd="$root/nanodecoder"
data="$root/tinyshakespeare.txt"
# CUDA libraries from PyTorch's wheels when the system has none.
site=$(python3 -c "import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))" 2>/dev/null || true)
[ -n "$site" ] && export NANODECODER_CUDA_PATH="${NANODECODER_CUDA_PATH:-$site}"
step() { echo "== $*" | tee -a "$out/$phase.log"; "$@" 2>&1 | tee -a "$out/$phase.log"; echo "== exit ${PIPESTATUS[0]}" | tee -a "$out/$phase.log"; }

prepare() {   # the char-level dataset, once
  [ -f data/shakespeare_char/train.bin ] || step "$nd" prepare --input "$data" --out data/shakespeare_char --tokenizer char
}

case "$phase" in
check)
  nvidia-smi 2>&1 | head -15 | tee -a "$out/$phase.log"
  step "$nd" cuda info
  step "$nd" cuda selftest
  step "$nd" cuda conformance
  step "$nd" cuda conformance --tf32 --filter matmul
  step "$nd" cuda nccl --all-reduce   # one rank: communicator on this GPU, all-reduce on its own stream
  prepare
  step "$nd" cuda train-check --steps 50 --data "$data"
  for device in cpu cuda; do
    step "$nd" train --device $device --set training.max_iters=50 --set training.eval_interval=50 \
      --set output.name=check-$device --overwrite
  done
  for compile in false true; do   # CUDA graph replay (compile: true) against eager, no dropout
    step "$nd" train --device cuda --set training.max_iters=50 --set training.eval_interval=50 --set model.dropout=0 \
      --set training.compile=$compile --set output.name=check-compile-$compile --overwrite
  done
  for device in cpu cuda; do   # greedy: the same text unless a logit near-tie breaks differently
    step "$nd" sample --device $device --checkpoint runs/check-cuda/checkpoint --temperature 0 --max-new-tokens 120
  done
  python3 - "$out/$phase.log" <<'PY'
import json, sys
def losses(name):
    return {r["step"]: r["train_loss"] for r in map(json.loads, open(f"runs/{name}/metrics.jsonl")) if "train_loss" in r}
cpu, gpu = losses("check-cpu"), losses("check-cuda")
worst = max(abs(gpu[s] - cpu[s]) / cpu[s] for s in cpu)
line = f"engine on cuda vs cpu, 50 steps: largest relative loss difference {worst:.2e} ({'ok' if worst <= 0.02 else 'FAIL'}, allowed 2%)"
eager, graph = losses("check-compile-false"), losses("check-compile-true")
worst = max(abs(graph[s] - eager[s]) / eager[s] for s in eager)
line += f"\nCUDA graph vs eager on cuda, 50 steps: largest relative loss difference {worst:.2e} ({'ok' if worst <= 1e-5 else 'FAIL'}, allowed 1e-5)"
print(line); open(sys.argv[1], "a").write(line + "\n")
PY
  ;;
train)
  prepare
  for p in none bf16 fp16; do
    step "$nd" train --device cuda --set training.mixed_precision=$p --set training.max_iters=300 \
      --set training.eval_interval=100 --set output.name=precision-$p --overwrite
  done
  ;;
speed)
  for batch in 8 16; do
    step "$nd" bench train --workload GPT2 --device cuda --precision bf16 --batch $batch --steps 10 --warmup 3 --data "$data"
    step "$nd" bench train --workload GPT2 --device cuda --precision bf16 --batch $batch --steps 10 --warmup 3 --compile --data "$data"
    step python3 bench/pytorch_gpt2_gpu.py --batch $batch --steps 10 --warmup 5
  done
  # Attention on fp32 cores instead of bf16 tensor cores: what EngineAttentionTC is worth.
  step env NANODECODER_ATTENTION=fp32 "$nd" bench train --workload GPT2 --device cuda --precision bf16 --batch 16 --steps 10 --warmup 3 --compile --data "$data"
  # The fused LM head keeps no [tokens, vocab] logits: a batch of 32 should fit where it did not.
  step "$nd" bench train --workload GPT2 --device cuda --precision bf16 --batch 32 --steps 10 --warmup 3 --compile --data "$data"
  step "$nd" bench train --workload GPT2 --device cuda --tf32 --batch 8 --steps 10 --warmup 3 --data "$data"
  step python3 bench/pytorch_gpt2_gpu.py --precision fp32 --tf32 --batch 8 --steps 10 --warmup 5
  ;;
cpu)
  step "$nd" bench ops
  step "$nd" bench train --workload B --steps 10 --warmup 2 --data "$data"
  step "$nd" bench train --workload B --steps 10 --warmup 2 --precision bf16 --data "$data"
  ;;
*) echo "usage: bench/gpu_session.sh check|train|speed|cpu" >&2; exit 2 ;;
esac
