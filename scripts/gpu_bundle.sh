#!/usr/bin/env bash
# What a GPU machine without Swift needs to run Nanodecoder's GPU checks and benchmarks, packed to
# travel with the `device` tool (at most 64 MiB): the portable binary (stripped), the shared
# libraries it links that such a machine may lack (oneDNN, OpenBLAS and theirs), and tiny
# Shakespeare, in one .gpu-bundle/bundle.tar.xz (git-ignored). On the GPU machine:
#
#   bash bench/gpu_session.sh check     # unpacks the bundle, then: cuda info, selftest, conformance, train checks
#   bash bench/gpu_session.sh speed     # GPT-2 124M steps: ours against PyTorch + torch.compile
#
#   scripts/gpu_bundle.sh [path/to/tinyshakespeare.txt]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/tinyshakespeare.txt}
[ -f "$data" ] || { echo "gpu_bundle: $data not found (pass the tiny Shakespeare text as the first argument)" >&2; exit 1; }
scripts/build_portable.sh
bin=.build-portable/release/nanodecoder
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib"
strip -o "$stage/nanodecoder" "$bin"
for lib in libdnnl.so.2 libopenblas.so.0 libgfortran.so.5 libgomp.so.1 libquadmath.so.0 libOpenCL.so.1; do
  path=$(ldd "$bin" | awk -v l="$lib" '$1 == l { print $3 }')
  if [ -n "$path" ]; then cp -L "$path" "$stage/lib/"; fi
done
cp "$data" "$stage/tinyshakespeare.txt"
mkdir -p .gpu-bundle
tar -C "$stage" -cf - . | xz -T2 -6 > .gpu-bundle/bundle.tar.xz
echo "wrote .gpu-bundle/bundle.tar.xz ($(du -h .gpu-bundle/bundle.tar.xz | cut -f1)); carry .gpu-bundle to the GPU machine"
