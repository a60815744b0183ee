"""Server start to ready, and resident memory, with three small models loaded.

Builds a registry with three production models (the native credit model, and two ONNX imports:
scikit-learn gradient boosting and XGBoost), starts `slipway serve --alias production` on a
free port, times spawn → first 200 from /v2/health/ready (median of 10 starts), and reads the
process's resident memory after one request to each model. Issue 5's targets: under 100 ms,
under 50 MB. Usage: python3 bench/serve_start.py [--slipway target/release/slipway]
"""

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(slipway, *args):
    subprocess.run([slipway, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--slipway", default=os.path.join(REPO, "target", "release", "slipway"))
    ap.add_argument("--starts", type=int, default=10)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="slipway-serve-bench-")
    reg = os.path.join(work, "reg")
    pkg = os.path.join(work, "credit")
    run(a.slipway, "train", "--data", "data/german_credit.csv", "--target", "creditability", "--positive-class", "bad",
        "--model", "logistic", "--out", pkg, "--json")
    run(a.slipway, "register", pkg, "--name", "credit", "--alias", "production", "--registry", reg)
    run(a.slipway, "import", "conformance/cases/sk_gradient_boosting.onnx", "--name", "cancer",
        "--data", "data/breast_cancer.csv", "--target", "diagnosis", "--alias", "production", "--registry", reg)
    run(a.slipway, "import", "conformance/cases/xgboost_regressor.onnx", "--name", "mpg", "--alias", "production",
        "--registry", reg)
    starts, rss = [], []
    for _ in range(a.starts):
        port = free_port()
        t0 = time.perf_counter()
        p = subprocess.Popen([a.slipway, "serve", "--registry", reg, "--alias", "production", "--http", f"127.0.0.1:{port}",
                              "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "SLIPWAY_LOG": "warn"})
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.0005)
        starts.append((time.perf_counter() - t0) * 1000)
        for m in ("credit", "cancer", "mpg"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{m}").read()
        body = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 30], "data": [1.0] * 30}]}).encode()
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/cancer/infer", data=body)).read()
        with open(f"/proc/{p.pid}/status") as f:
            kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        rss.append(kb / 1024)
        p.terminate()
        p.wait()
    result = {
        "date": datetime.date.today().isoformat(),
        "models": ["credit (native logistic)", "cancer (ONNX sklearn GBDT)", "mpg (ONNX XGBoost regressor)"],
        "start_to_ready_ms": {"median": statistics.median(starts), "min": min(starts), "max": max(starts)},
        "rss_mb": {"median": statistics.median(rss), "max": max(rss)},
        "targets": {"start_to_ready_ms": 100, "rss_mb": 50},
    }
    out = os.path.join(REPO, "bench", "results", f"serve-start-{result['date']}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"start → ready: median {result['start_to_ready_ms']['median']:.1f} ms "
          f"(min {min(starts):.1f}, max {max(starts):.1f}; target < 100 ms)")
    print(f"RSS with 3 models after a request each: median {result['rss_mb']['median']:.1f} MB (target < 50 MB)")
    print(f"→ {out}")


if __name__ == "__main__":
    main()
