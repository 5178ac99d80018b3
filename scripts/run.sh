#!/usr/bin/env bash
# Sets everything up and runs the main job on built-in defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release
.build/release/nanodecoder bench ops
