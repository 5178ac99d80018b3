#!/usr/bin/env bash
# Installs the system libraries Nanodecoder links: oneDNN (GEMM, bf16) and OpenBLAS (fp32 GEMM option).
# Debian/Ubuntu. Skips apt when everything is already there.
set -euo pipefail
packages=(libdnnl-dev libopenblas-dev pkg-config)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
