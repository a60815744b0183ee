#!/usr/bin/env bash
# Hostile-input probe (issue 13): builds slipway, then runs bench/probe.py, which serves the
# credit model under `ulimit -v`, sends flood and malformed requests, checks each is refused
# with a 4xx while normal requests keep being answered and RSS stays bounded, and imports
# hostile ONNX graphs. Standard library Python only; about 30 s after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/probe.py --slipway target/release/slipway "$@"
