#!/usr/bin/env bash
# Installs the system libraries Nanodecoder uses: oneDNN (GEMM, bf16), OpenBLAS (fp32 GEMM option),
# Open MPI (multi-process data parallelism; loaded at run time, so single-process runs work without it).
# Debian/Ubuntu. Skips apt when everything is already there.
set -euo pipefail
packages=(libdnnl-dev libopenblas-dev pkg-config openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
