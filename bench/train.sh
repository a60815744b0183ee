#!/usr/bin/env bash
# Training benchmark: slipway vs scikit-learn on the same split, preprocessing and hyperparameters.
# Usage: bench/train.sh [--repeats N] [--epochs N] [--seed N] [--seeds N] [--large-repeats N]   (see bench/README.md)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=bench/common.sh
source "$REPO/bench/common.sh"

ensure_venv
build_slipway
setup_dirs

log "stratified 80/20 splits (seed 42) into bench/work"
"$PY" bench/split_data.py --data data/german_credit.csv --target creditability \
    --out-prefix "$WORK/german_credit" --test-size 0.2 --seed 42
"$PY" bench/split_data.py --data data/breast_cancer.csv --target diagnosis \
    --out-prefix "$WORK/breast_cancer" --test-size 0.2 --seed 42

log "800k/200k head/tail cut of a 1,000,000-row resample of breast_cancer.csv (scale case)"
"$PY" bench/make_predict_data.py --data data/breast_cancer.csv --rows 1000000 --seed 42 \
    --out "$WORK/breast_cancer-1m.csv"
big="$WORK/breast_cancer-1m.csv"
if [[ ! -f "$WORK/breast_cancer-800k-test.csv" || "$big" -nt "$WORK/breast_cancer-800k-test.csv" ]]; then
    head -n 800001 "$big" >"$WORK/breast_cancer-800k-train.csv"
    { head -n 1 "$big"; tail -n +800002 "$big"; } >"$WORK/breast_cancer-800k-test.csv"
fi

log "timing fits (slipway, sklearn default threads, sklearn 1 thread)"
"$PY" bench/train_bench.py "$@"
