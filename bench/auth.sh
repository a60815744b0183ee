#!/usr/bin/env bash
# The cost of API keys (issue 15): single-row V2 JSON requests to the credit model, keys off
# against keys on (an infer key sent on every request), the server pinned to core 0 and wrk to
# core 1, three alternating 8-second rounds of 32 connections. Needs wrk (apt-get install wrk).
# Writes bench/results/auth-DATE.md.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
source "$REPO/bench/common.sh"
setup_dirs
build_slipway
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || sudo apt-get install -y wrk >/dev/null; }

W="$WORK/auth"
rm -rf "$W" && mkdir -p "$W"
log "training and registering the credit model (slipway demo)"
(cd "$W" && "$SLIPWAY" demo --dir demo >/dev/null)
cp -r "$W/demo/registry" "$W/reg-off"
cp -r "$W/demo/registry" "$W/reg-on"
TOKEN=$("$SLIPWAY" keys create --name bench --role infer --registry "$W/reg-on" 2>/dev/null)
"$SLIPWAY" models example credit@production --registry "$W/reg-off" --body v2 >"$W/body.json"
for mode in on off; do
    {
        echo 'wrk.method = "POST"'
        echo "wrk.body = io.open(\"$W/body.json\"):read(\"*a\")"
        echo 'wrk.headers["Content-Type"] = "application/json"'
        [[ $mode == on ]] && echo "wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\""
    } >"$W/$mode.lua"
done

run() { # mode port
    taskset -c 0 "$SLIPWAY" serve --registry "$W/reg-$1" --model credit@production --http "127.0.0.1:$2" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do curl -sf "127.0.0.1:$2/v2/health/ready" >/dev/null && break; sleep 0.1; done
    taskset -c 1 wrk -t1 -c32 -d8s -s "$W/$1.lua" "http://127.0.0.1:$2/v2/models/credit/infer" |
        awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "non-2xx " $0 > "/dev/stderr"}'
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

declare -a OFF ON
for round in 1 2 3; do
    OFF+=("$(run off 18301)")
    ON+=("$(run on 18302)")
    log "round $round: off ${OFF[-1]} req/s, on ${ON[-1]} req/s"
done
mean() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.0f", s/NR}'; }
off=$(mean "${OFF[@]}"); on=$(mean "${ON[@]}")
cost=$(awk -v a="$off" -v b="$on" 'BEGIN {printf "%.1f", (a-b)/a*100}')
out="$RESULTS/auth-$(date +%F).md"
{
    echo "# API keys: cost on single-row requests ($(date +%F))"
    echo
    echo "V2 JSON, one row, credit model; server on core 0, wrk -t1 -c32 -d8s on core 1; 3 alternating rounds."
    echo
    echo "| keys | req/s (rounds) | mean |"
    echo "|---|---|---|"
    echo "| off | ${OFF[*]} | $off |"
    echo "| on (infer key on every request) | ${ON[*]} | $on |"
    echo
    echo "Cost of keys: $cost %."
} >"$out"
cat "$out"
