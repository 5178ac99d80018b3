#!/usr/bin/env bash
# A nanodecoder binary for other Linux x86-64 machines, GPU machines without Swift included:
# the Swift runtime linked in (--static-swift-stdlib; not -static-executable, which breaks dlopen),
# kernels compiled for Haswell (AVX2 + FMA) instead of this machine's CPU. The target machine
# needs glibc ≥ 2.35 and the shared libraries `ldd` lists below (oneDNN, OpenBLAS); CUDA, NVRTC
# and Open MPI are found at run time.
#
#   scripts/build_portable.sh            # → .build-portable/release/nanodecoder
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
NANODECODER_CPU=${NANODECODER_CPU:-haswell} swift build -c release --static-swift-stdlib --build-path .build-portable --product nanodecoder
bin=.build-portable/release/nanodecoder
echo "built $bin ($(du -h "$bin" | cut -f1)); shared libraries it needs:"
ldd "$bin" | awk '{print "  " $1}'
