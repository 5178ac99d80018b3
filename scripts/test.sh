#!/usr/bin/env bash
# The test command: installs system packages if needed, then runs the whole default suite.
# Serial (--no-parallel): the allocator test counts process-wide allocations.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift test --no-parallel "$@"
