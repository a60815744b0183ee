"""Goodput under overload (issue 13, defect 9): does the model keep working at its capacity
while the server refuses what it cannot take?

The server (`slipway serve`) runs pinned to one core, the load generator (`examples/loadgen`)
to the other. Requests are 256-row V2 JSON bodies. Two models, so that both bottlenecks are
overloaded:
- `gbt`: the breast-cancer gradient-boosting graph of the conformance suite (`slipway import`):
  ~25 us of model per request, so reading and parsing the JSON is the bottleneck;
- `mlp`: a native MLP (512, 512) trained on the same data with `--input matrix`: ~3.4 ms of
  model per request, so the model is the bottleneck and its queue fills.

For each:
1. The sustainable rate: closed loop, 8 connections, successful requests per second.
2. Closed loop at 12, 128 and 512 connections (where the outside review saw goodput collapse).
3. Open loop at 2x, 4x and 16x the sustainable rate (requests scheduled at a fixed rate, up to
   `--concurrency` in flight; slots the clients reach only after the run are not sent).
Goodput is successful requests per second as a share of the sustainable rate; the target is at
least 80 % at every level.

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


def body(rows, name="X", datatype="FP32"):
    rng = random.Random(42)
    lines = DATA.read_text().splitlines()[1:]
    values = []
    for _ in range(rows):
        cells = rng.choice(lines).split(",")
        values.extend(float(c) for c in cells[:30])
    return json.dumps({"inputs": [{"name": name, "datatype": datatype, "shape": [rows, 30], "data": values}]})


def loadgen(core, url, body_path, concurrency, seconds, rate=None):
    cmd = ["taskset", "-c", str(core), str(LOADGEN), "--url", url, "--body", str(body_path),
           "--concurrency", str(concurrency), "--seconds", str(seconds)]
    if rate:
        cmd += ["--rate", str(rate)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    r["why_failed"] = done.stderr.strip()
    return r


def prepare(work):
    """Both models in one registry, each at `production`."""
    registry = work / "reg"
    run = lambda *args: subprocess.run([str(SLIPWAY), *args], check=True, capture_output=True, cwd=REPO)
    run("import", str(GRAPH), "--name", "gbt", "--registry", str(registry), "--data", str(DATA),
        "--target", "diagnosis", "--alias", "production")
    run("train", "--data", str(DATA), "--target", "diagnosis", "--model", "mlp", "--hidden", "512,512",
        "--epochs", "5", "--input", "matrix", "--name", "mlp", "--out", str(work / "mlp"))
    run("register", str(work / "mlp"), "--registry", str(registry), "--name", "mlp")
    run("promote", "mlp:1", "--registry", str(registry), "--to", "production")
    (work / "gbt.json").write_text(body(256))
    (work / "mlp.json").write_text(body(256, "features", "FP64"))
    return registry


def scenario(a, registry, work, model):
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", str(a.server_core), str(SLIPWAY), "serve", "--registry", str(registry),
                               "--model", f"{model}@production", "--http", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                              env={**os.environ, "SLIPWAY_LOG": os.environ.get("SLIPWAY_LOG", "info")})
    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
    body_path = work / f"{model}.json"
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
        rows = [("closed loop, 8 connections", closed)]
        for c in (12, 128, 512):
            rows.append((f"closed loop, {c} connections", loadgen(a.client_core, url, body_path, c, a.seconds)))
        for k in (2, 4, 16):
            r = loadgen(a.client_core, url, body_path, a.concurrency, a.seconds, rate=k * sustainable)
            rows.append((f"{k}x sustainable ({k * sustainable:,.0f} req/s offered)", r))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats") as resp:
            stats = json.load(resp)["model_stats"][0]["inference_stats"]
    finally:
        server.terminate()
        server.wait(timeout=15)
    return sustainable, rows, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=512)
    ap.add_argument("--models", default="gbt,mlp")
    a = ap.parse_args()
    for exe in (SLIPWAY, LOADGEN):
        if not exe.exists():
            sys.exit(f"{exe} is missing: cargo build --release --bin slipway --example loadgen -p slipway-server -p slipway-cli")
    work = Path(tempfile.mkdtemp(prefix="slipway-goodput-"))
    registry = prepare(work)
    results = {}
    worst = 1.0
    for model in a.models.split(","):
        sustainable, rows, stats = scenario(a, registry, work, model)
        mean_us = lambda k: stats[k]["ns"] / max(stats[k]["count"], 1) / 1000
        print(f"\n### {model}: sustainable {sustainable:,.0f} req/s; in the server, per answered request: "
              f"queue {mean_us('queue'):,.0f} us, model {mean_us('compute_infer'):,.0f} us, "
              f"whole request {mean_us('success'):,.0f} us\n")
        print("| load | answered req/s | share of sustainable | shed (503) | failed | answered p99 (from schedule) |")
        print("|---|---|---|---|---|---|")
        for name, r in rows:
            print(f"| {name} | {r['ok_per_s']:,.0f} | {r['ok_per_s'] / sustainable:.0%} | {r.get('shed', 0):,} | "
                  f"{r.get('failed', 0):,} | {r.get('p99_us', 0) / 1000:,.1f} ms |")
            if r.get("why_failed"):
                print(f"|  | {r['why_failed']} | | | | |")
        worst = min([worst] + [r["ok_per_s"] / sustainable for _, r in rows[1:]])
        results[model] = {"sustainable_per_s": sustainable, "stats": stats,
                          "runs": [{"load": name, **r} for name, r in rows]}
    print(f"\nworst goodput under overload: {worst:.0%} of sustainable (target >= 80 %)")
    out = REPO / "bench/results" / f"goodput-{datetime.date.today()}.json"
    out.write_text(json.dumps({"models": results, "cpus": os.cpu_count(), "seconds": a.seconds,
                               "concurrency": a.concurrency,
                               "queue_capacity": os.environ.get("SLIPWAY_QUEUE_CAPACITY", "2048 (default)")}, indent=1))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
