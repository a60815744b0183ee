# Shared set-up for bench/*.sh. Source it; it expects REPO to be the repository root.

VENV="$REPO/bench/.venv"
PY="$VENV/bin/python"
WORK="$REPO/bench/work"
RESULTS="$REPO/bench/results"
SLIPWAY="$REPO/target/release/slipway"

log() { printf '\n== %s\n' "$*" >&2; }

# Creates bench/.venv if missing and installs the pinned packages when requirements.txt changed.
ensure_venv() {
    if [[ ! -x "$PY" ]]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha256"
    local want
    want=$(sha256sum "$REPO/bench/requirements.txt" | cut -d' ' -f1)
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        log "installing pinned Python packages"
        "$PY" -m pip install --quiet --disable-pip-version-check -r "$REPO/bench/requirements.txt"
        echo "$want" >"$stamp"
    fi
}

build_slipway() {
    log "cargo build --release"
    (cd "$REPO" && cargo build --release --quiet)
}

setup_dirs() {
    mkdir -p "$WORK" "$RESULTS"
}
