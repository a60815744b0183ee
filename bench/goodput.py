"""Goodput under overload (issue 13, defect 9): does the model keep working at its capacity
while the server refuses what it cannot take?

The server (`slipway serve`, the breast-cancer gradient-boosting graph of the conformance suite,
imported with `slipway import`) runs pinned to one core, the load generator
(`examples/loadgen`) to the other. Requests are 256-row V2 JSON bodies.

1. The sustainable rate: closed loop, 8 connections, successful requests per second.
2. Open loop at 2x, 4x and 16x that rate (requests scheduled at a fixed rate, up to
   `--concurrency` in flight), successful requests per second as a share of the sustainable rate.
   The target is at least 80 % at every level.

The server's settings come from `SLIPWAY_*` variables (e.g. `SLIPWAY_QUEUE_CAPACITY=8192`).
Standard library only; needs `taskset`. Run from the repository:
    cargo build --release --bin slipway --example loadgen -p slipway-server -p slipway-cli
    python3 bench/goodput.py [--seconds 10] [--server-core 1] [--client-core 0]
Writes bench/results/goodput-<date>.json and prints a markdown table.
"""

import argparse
import datetime
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SLIPWAY = REPO / "target/release/slipway"
LOADGEN = REPO / "target/release/examples/loadgen"
GRAPH = REPO / "conformance/cases/sk_gradient_boosting.onnx"
DATA = REPO / "data/breast_cancer.csv"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body(rows):
    rng = random.Random(42)
    lines = DATA.read_text().splitlines()[1:]
    values = []
    for _ in range(rows):
        cells = rng.choice(lines).split(",")
        values.extend(float(c) for c in cells[:30])
    return json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [rows, 30], "data": values}]})


def loadgen(core, url, body_path, concurrency, seconds, rate=None):
    cmd = ["taskset", "-c", str(core), str(LOADGEN), "--url", url, "--body", str(body_path),
           "--concurrency", str(concurrency), "--seconds", str(seconds)]
    if rate:
        cmd += ["--rate", str(rate)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=512)
    a = ap.parse_args()
    for exe in (SLIPWAY, LOADGEN):
        if not exe.exists():
            sys.exit(f"{exe} is missing: cargo build --release --bin slipway --example loadgen -p slipway-server -p slipway-cli")
    work = Path(tempfile.mkdtemp(prefix="slipway-goodput-"))
    registry = work / "reg"
    subprocess.run([str(SLIPWAY), "import", str(GRAPH), "--name", "gbt", "--registry", str(registry),
                    "--data", str(DATA), "--target", "diagnosis", "--alias", "production"],
                   check=True, capture_output=True, cwd=REPO)
    body_path = work / "body_256.json"
    body_path.write_text(body(256))
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", str(a.server_core), str(SLIPWAY), "serve", "--registry", str(registry),
                               "--model", "gbt@production", "--http", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                              env={**os.environ, "SLIPWAY_LOG": os.environ.get("SLIPWAY_LOG", "info")})
    url = f"http://127.0.0.1:{port}/v2/models/gbt/infer"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        loadgen(a.client_core, url, body_path, 8, 2)  # warm
        closed = loadgen(a.client_core, url, body_path, 8, a.seconds)
        sustainable = closed["ok_per_s"]
        rows = [("closed loop, 8 connections", sustainable, closed)]
        for k in (2, 4, 16):
            r = loadgen(a.client_core, url, body_path, a.concurrency, a.seconds, rate=k * sustainable)
            rows.append((f"{k}x sustainable ({k * sustainable:,.0f} req/s offered)", r["ok_per_s"], r))
    finally:
        server.terminate()
        server.wait(timeout=15)
    print("| load | answered req/s | share of sustainable | shed (503) | failed | accepted p99 |")
    print("|---|---|---|---|---|---|")
    for name, ok, r in rows:
        print(f"| {name} | {ok:,.0f} | {ok / sustainable:.0%} | {r.get('shed', 0):,} | {r.get('failed', 0):,} | "
              f"{r.get('p99_us', 0) / 1000:.1f} ms |")
    worst = min(ok / sustainable for _, ok, _ in rows[1:])
    print(f"\nworst goodput under overload: {worst:.0%} of sustainable (target >= 80 %)")
    out = REPO / "bench/results" / f"goodput-{datetime.date.today()}.json"
    out.write_text(json.dumps({"sustainable_per_s": sustainable, "runs": [
        {"load": name, "ok_per_s": ok, **r} for name, ok, r in rows],
        "cpus": os.cpu_count(), "seconds": a.seconds, "concurrency": a.concurrency,
        "queue_capacity": os.environ.get("SLIPWAY_QUEUE_CAPACITY", "2048 (default)")}, indent=1))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
