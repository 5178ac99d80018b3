#!/usr/bin/env bash
# Builds the emulated GPU into OUT (default /tmp/nanodecoder-emu): the fake driver, cuBLASLt and NCCL
# in OUT/lib, and every CUDA kernel unit of the nanodecoder binary compiled for the CPU emulator in
# OUT/kernels. Then, for example:
#   NANODECODER_CUDA_PATH=OUT:.cuda-site NANODECODER_EMU_KERNELS=OUT/kernels nanodecoder cuda conformance
# runs the real CUDA backend (argument packing, grids, streams, graphs, cuBLASLt calls) on the CPU.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-/tmp/nanodecoder-emu}"
binary="${2:-$here/../../.build/debug/nanodecoder}"
cxx="${CXX:-clang++}"
mkdir -p "$out/lib" "$out/src" "$out/kernels"
"$cxx" -std=c++17 -O2 -fPIC -shared "$here/fake_cuda.cpp" -o "$out/lib/libcuda.so.1" -Wl,-soname,libcuda.so.1 -ldl
"$cxx" -std=c++17 -O2 -fPIC -shared "$here/fake_cublaslt.cpp" -o "$out/lib/libcublasLt.so" -Wl,-soname,libcublasLt.so \
  -L "$out/lib" -l:libcuda.so.1 -Wl,-rpath,'$ORIGIN'
"$cxx" -std=c++17 -O2 -fPIC -shared "$here/fake_nccl.cpp" -o "$out/lib/libnccl.so.2" -Wl,-soname,libnccl.so.2 \
  -L "$out/lib" -l:libcuda.so.1 -Wl,-rpath,'$ORIGIN'
"$binary" cuda kernels --dump "$out/src" >/dev/null
python3 "$here/build_kernels.py" "$out/src" "$out/kernels"
