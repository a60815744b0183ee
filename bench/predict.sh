#!/usr/bin/env bash
# Batch-scoring benchmark (1M rows, one core) and peak memory of `slipway train` on 1M rows.
# Usage: bench/predict.sh [--repeats N] [--core N]   (see bench/README.md)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=bench/common.sh
source "$REPO/bench/common.sh"

if [[ ! -x /usr/bin/time ]]; then
    log "installing GNU time"
    apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }

ensure_venv
build_slipway
setup_dirs

log "1,000,000-row CSVs sampled with replacement (seed 42) into bench/work"
"$PY" bench/make_predict_data.py --data data/german_credit.csv --rows 1000000 --seed 42 \
    --out "$WORK/german_credit-1m.csv"
"$PY" bench/make_predict_data.py --data data/breast_cancer.csv --rows 1000000 --seed 42 \
    --out "$WORK/breast_cancer-1m.csv"

log "scoring and training-memory runs"
"$PY" bench/predict_bench.py "$@"
