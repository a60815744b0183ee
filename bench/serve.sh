#!/usr/bin/env bash
# Serving benchmark: Slipway (native and ONNX, REST and gRPC, batching on and off) against
# MLServer's scikit-learn runtime, a bare axum handler and onnxruntime in-process, in one run.
# Server pinned to one core, load generator to the other. See bench/README.md.
#   bench/serve.sh [--seconds 8] [--overload-seconds 30] [--server-core 1] [--client-core 0]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$REPO/bench/.venv-serve"

log() { printf '\n== %s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
    log "installing wrk"
    (apt-get install -y wrk >/dev/null 2>&1 || sudo apt-get install -y wrk >/dev/null) \
        || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$REPO/bench/serve_requirements.txt" | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "installing MLServer, onnxruntime, scikit-learn, skl2onnx (about 1 min)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REPO/bench/serve_requirements.txt"
    echo "$want" >"$stamp"
fi

log "cargo build --release (slipway, the load generator, the bare HTTP handler, runtime_bench)"
(cd "$REPO" && cargo build --release --quiet -p slipway-cli \
    && cargo build --release --quiet -p slipway-server --example loadgen --example bare_http \
    && cargo build --release --quiet -p slipway-runtime --example runtime_bench)

mkdir -p "$REPO/bench/work/serve" "$REPO/bench/results"
exec "$VENV/bin/python" "$REPO/bench/serve_bench.py" "$@"
