#!/usr/bin/env bash
# In-process ONNX latency: Slipway's runtime vs onnxruntime (one thread each), batches of 1 and
# 256 rows, on the conformance models and a ~1 MB random forest; and load + warm-up time.
# Usage: bench/runtime.sh [--repeats N] [--core N] [--budget-ms MS] [--loads N] [CASE...]
#        (see bench/README.md)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=bench/common.sh
source "$REPO/bench/common.sh"

# This benchmark needs onnxruntime, scikit-learn and skl2onnx: the conformance generator's pinned
# set. Reuse conformance/.venv when it has them; otherwise keep a venv of its own.
CONF_PY="$REPO/conformance/.venv/bin/python"
RT_VENV="$REPO/bench/.venv-runtime"
ensure_runtime_venv() {
    if [[ -x "$CONF_PY" ]] && "$CONF_PY" -c 'import onnxruntime, sklearn, skl2onnx, numpy' 2>/dev/null; then
        PY="$CONF_PY"
        log "using conformance/.venv ($("$PY" -c 'import onnxruntime; print("onnxruntime", onnxruntime.__version__)'))"
        return
    fi
    PY="$RT_VENV/bin/python"
    if [[ ! -x "$PY" ]]; then
        log "creating $RT_VENV"
        python3 -m venv "$RT_VENV"
        echo '*' >"$RT_VENV/.gitignore"
    fi
    local stamp="$RT_VENV/.requirements.sha256"
    local want
    want=$(sha256sum "$REPO/conformance/requirements.txt" | cut -d' ' -f1)
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        log "installing conformance/requirements.txt into $RT_VENV"
        "$PY" -m pip install --quiet --disable-pip-version-check -r "$REPO/conformance/requirements.txt"
        echo "$want" >"$stamp"
    fi
}

# Its own target directory, so this build never waits on (or invalidates) another build's lock.
build_example() {
    log "cargo build --release -p slipway-runtime --example runtime_bench (target/bench)"
    CARGO_TARGET_DIR="$REPO/target/bench" cargo build --release --quiet -p slipway-runtime --example runtime_bench
}

command -v taskset >/dev/null || log "taskset not found: the processes will not be pinned"

ensure_runtime_venv
build_example
setup_dirs

log "latency and load runs"
"$PY" bench/runtime_bench.py --example "$REPO/target/bench/release/examples/runtime_bench" "$@"
