#!/usr/bin/env bash
# Model-registry latency: `slipway register` of a ~10 MB package, resolving credit@production,
# `models list` over 1,000 models x 20 versions, and `registry verify`.
# Usage: bench/registry.sh [--register-runs N] [--show-runs N] [--list-runs N]   (see bench/README.md)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=bench/common.sh
source "$REPO/bench/common.sh"

# Standard library only: the machine's python3 is enough, no venv.
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

build_slipway
setup_dirs

log "registry benchmark (fresh registries in bench/work/registry-bench)"
python3 bench/registry_bench.py "$@"
