"""Serving benchmark driver for bench/serve.sh: Slipway against MLServer (its scikit-learn
runtime, both parallel_workers settings), a bare axum handler (the HTTP ceiling) and onnxruntime
in-process (the compute anchor), on the same models and request bodies, each server pinned to
one core and the load generator to the other. Prints one table and writes
bench/results/serve-<date>.json (and .md).

Usage: serve_bench.py [--seconds 8] [--overload-seconds 30] [--server-core 1] [--client-core 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, SLIPWAY, machine, table, write_results  # noqa: E402

WORK = REPO / "bench" / "work" / "serve"
BODIES = WORK / "bodies"
LOADGEN = REPO / "target" / "release" / "examples" / "loadgen"
BARE = REPO / "target" / "release" / "examples" / "bare_http"
RUNTIME_BENCH = REPO / "target" / "release" / "examples" / "runtime_bench"
VENV_PY = REPO / "bench" / ".venv-serve" / "bin" / "python"
MLSERVER = REPO / "bench" / ".venv-serve" / "bin" / "mlserver"
DATA = REPO / "data" / "breast_cancer.csv"
LUA = REPO / "bench" / "wrk_post.lua"

SLIPWAY_HTTP, SLIPWAY_GRPC = "127.0.0.1:18100", "127.0.0.1:18101"
BARE_HTTP = "127.0.0.1:18090"
MLSERVER_HTTP, MLSERVER_GRPC = "127.0.0.1:18080", "127.0.0.1:18081"


def log(msg: str) -> None:
    print(f"== {msg}", file=sys.stderr, flush=True)


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=REPO, **kw)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{p.stdout}\n{p.stderr}")
    return p


# ---------------------------------------------------------------- models and bodies


def native_bodies() -> None:
    """V2 bodies for the native packages, JSON and binary: the matrix packages take one FP64
    [n, 30] tensor named `features` (the columns in the package's order); `mlp_cols` takes one
    FP64 [n] tensor per column."""
    with DATA.open() as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    features = json.loads((WORK / "native" / "mlp" / "slipway.json").read_text())["features"]
    features = [f["name"] for f in features]
    idx = [header.index(c) for c in features]
    for n in (1, 256):
        cols = [[float(rows[r % len(rows)][i]) for r in range(n)] for i in idx]
        flat = [cols[j][r] for r in range(n) for j in range(len(cols))]

        def write(stem: str, inputs: list, blocks: list) -> None:
            (BODIES / f"{stem}_{n}.json").write_text(json.dumps({"inputs": inputs}))
            head = {
                "inputs": [
                    {k: v for k, v in i.items() if k != "data"} | {"parameters": {"binary_data_size": 8 * len(i["data"])}}
                    for i in inputs
                ],
                "parameters": {"binary_data_output": True},
            }
            h = json.dumps(head).encode()
            (BODIES / f"{stem}_{n}.bin").write_bytes(h + b"".join(struct.pack(f"<{len(b)}d", *b) for b in blocks))
            (BODIES / f"{stem}_{n}.bin.hlen").write_text(str(len(h)))

        write("native", [{"name": "features", "datatype": "FP64", "shape": [n, len(cols)], "data": flat}], [flat])
        write("native_cols", [{"name": f, "datatype": "FP64", "shape": [n], "data": c} for f, c in zip(features, cols)], cols)


def make_models() -> None:
    log("models: scikit-learn (MLServer, ONNX) and slipway train (native)")
    run([VENV_PY, "bench/serve_models.py", WORK])
    mlp = ["--model", "mlp", "--hidden", "64,32", "--seed", "0"]
    # The native packages take a matrix, as MLServer and the ONNX models do; `mlp_cols` is the
    # same MLP taking one tensor per column, to show what 30 tensors per request cost.
    for name, extra in (("logistic", ["--model", "logistic", "--input", "matrix"]), ("mlp", [*mlp, "--input", "matrix"]),
                        ("mlp_cols", [*mlp, "--input", "columns"]),
                        # A compute-bound model, to show what batching buys when the model, not
                        # HTTP, is the cost (the MLP runs a row in ~3 µs of a ~20 µs request).
                        ("mlp_wide", ["--model", "mlp", "--hidden", "512,512", "--epochs", "10", "--seed", "0", "--input", "matrix"])):
        out = WORK / "native" / name
        manifest = out / "slipway.json"
        want_matrix = "matrix" in extra
        if manifest.exists():
            inputs = json.loads(manifest.read_text())["signature"]["inputs"]
            if (len(inputs) == 1 and len(inputs[0]["shape"]) == 2) == want_matrix:
                continue
            shutil.rmtree(out)
        run([SLIPWAY, "train", "--data", DATA, "--target", "diagnosis", "--name", name, "--out", out, *extra])
    native_bodies()
    registry = WORK / "registry"
    if not (registry / "registry.db").exists():
        # scikit-learn orders classes alphabetically: probabilities are [benign, malignant].
        for name in ("logistic", "mlp"):
            run([SLIPWAY, "import", WORK / "onnx" / f"{name}.onnx", "--name", f"{name}_onnx",
                 "--features-from", DATA, "--target", "diagnosis", "--classes", "benign,malignant",
                 "--registry", registry])


# ---------------------------------------------------------------- servers


STARTED: list = []


class Server:
    def __init__(self, cmd: list, ready_url: str, env: dict | None = None, core: int = 1, any_status: bool = False):
        e = os.environ.copy()
        e.update(env or {})
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(core), *map(str, cmd)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=e, start_new_session=True,
        )
        STARTED.append(self)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError:
                if any_status:  # answering at all is ready enough (the bare handler has one route)
                    return
                time.sleep(0.1)
            except Exception:
                time.sleep(0.1)
        self.stop()
        sys.exit(f"server did not become ready: {cmd}")

    def rss_mb(self) -> float:
        """Resident memory of the server and its children (MLServer forks workers)."""
        total = 0
        pids = [self.proc.pid]
        try:
            out = subprocess.run(["pgrep", "-s", str(self.proc.pid)], capture_output=True, text=True).stdout
            pids = [int(p) for p in out.split()] or pids
        except OSError:
            pass
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return round(total / 1024, 1)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def slipway_server(core: int, extra: list[str] = ()) -> Server:
    cmd = [SLIPWAY, "serve", WORK / "native" / "logistic", WORK / "native" / "mlp", WORK / "native" / "mlp_cols", WORK / "native" / "mlp_wide",
           "--registry", WORK / "registry", "--model", "logistic_onnx", "--model", "mlp_onnx",
           "--http", SLIPWAY_HTTP, "--grpc", SLIPWAY_GRPC, "--workers", "1", "--watch-ms", "0", *extra]
    # Request logs at warn (failures only), as MLServer runs with debug off.
    return Server(cmd, f"http://{SLIPWAY_HTTP}/v2/health/ready", {"SLIPWAY_LOG": "warn"}, core)


# ---------------------------------------------------------------- load


def to_ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def wrk(url: str, body: Path, conc: int, seconds: float, core: int) -> dict:
    p = run(["taskset", "-c", core, "wrk", "-t1", f"-c{conc}", f"-d{int(seconds)}s", "--latency", "-s", LUA, url, "--", body])
    out = p.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"req_s": rps, "p50_ms": to_ms(lat.get("50", "")), "p99_ms": to_ms(lat.get("99", "")),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else ""}


def loadgen(args: list, core: int) -> dict:
    p = run(["taskset", "-c", core, LOADGEN, *args])
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return {"req_s": r["ok_per_s"], "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "shed": r["shed"], "failed": r["failed"], "offered_s": r["offered_per_s"]}


def hlen(body: Path) -> list[str]:
    h = body.with_name(body.name + ".hlen")
    return ["--header-len", h.read_text().strip()] if h.exists() else []


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--overload-seconds", type=float, default=30)
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--report", type=Path, help="re-render the tables of a results JSON and exit")
    a = ap.parse_args()
    if a.report:
        print(report(json.loads(a.report.read_text()))[0])
        return
    sc, cc, secs = a.server_core, a.client_core, a.seconds
    make_models()
    results: list[dict] = []

    def best_rate(server, model, protocol, rows):
        return max(r["req_s"] for r in results if r["server"] == server and r["model"] == model
                   and r["protocol"] == protocol and r["rows"] == rows)

    def add(server, model, protocol, rows, conc, r):
        r = {"server": server, "model": model, "protocol": protocol, "rows": rows, "concurrency": conc, **r}
        r["rows_s"] = r["req_s"] * rows
        results.append(r)
        log(f"{server} {model} {protocol} rows={rows} c={conc}: {r['req_s']:.0f} req/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms")
        return r

    # The HTTP ceiling.
    log("bare axum")
    bare = Server([BARE, BARE_HTTP], f"http://{BARE_HTTP}/", core=sc, any_status=True)
    for c in (32, 64):
        add("bare-axum", "-", "rest", 1, c, wrk(f"http://{BARE_HTTP}/v2/models/m/infer", BODIES / "onnx_1.json", c, secs, cc))
    bare.stop()

    # Slipway, batching on (the default).
    log("slipway")
    srv = slipway_server(sc)
    base = f"http://{SLIPWAY_HTTP}/v2/models"
    rss = {"slipway_start_mb": srv.rss_mb()}
    cases = [("mlp", "native_1.json"), ("logistic", "native_1.json"), ("mlp_onnx", "onnx_1.json"), ("logistic_onnx", "onnx_1.json")]
    for model, body in cases:
        for c in (1, 8, 32, 64):
            add("slipway", model, "rest", 1, c, wrk(f"{base}/{model}/infer", BODIES / body, c, secs, cc))
    add("slipway", "mlp_cols", "rest", 1, 32, wrk(f"{base}/mlp_cols/infer", BODIES / "native_cols_1.json", 32, secs, cc))
    add("slipway", "mlp_wide", "rest", 1, 64, wrk(f"{base}/mlp_wide/infer", BODIES / "native_1.json", 64, secs, cc))
    for model, body in [("mlp", "native_256.json"), ("mlp_onnx", "onnx_256.json"), ("logistic", "native_256.json"),
                        ("logistic_onnx", "onnx_256.json"), ("mlp_cols", "native_cols_256.json")]:
        add("slipway", model, "rest", 256, 8, wrk(f"{base}/{model}/infer", BODIES / body, 8, secs, cc))
    for model, body in [("mlp", "native_256.bin"), ("mlp_onnx", "onnx_256.bin")]:
        add("slipway", model, "rest-binary", 256, 8, wrk(f"{base}/{model}/infer", BODIES / body, 8, secs, cc))
    for model, body in [("mlp", "native_1.json"), ("mlp_onnx", "onnx_1.json")]:
        for c in (1, 8, 32, 64):
            add("slipway", model, "grpc", 1, c, loadgen(["--grpc", SLIPWAY_GRPC, "--model", model, "--body", BODIES / body,
                                                         "--concurrency", c, "--seconds", secs], cc))
    add("slipway", "mlp_onnx", "grpc", 256, 8, loadgen(["--grpc", SLIPWAY_GRPC, "--model", "mlp_onnx", "--body", BODIES / "onnx_256.bin",
                                                        *hlen(BODIES / "onnx_256.bin"), "--concurrency", 8, "--seconds", secs], cc))
    rss["slipway_after_load_mb"] = srv.rss_mb()

    # Overload: twice the sustainable rate of 256-row JSON requests to the native MLP (what one
    # core can parse and score), open loop for 30 s; latency counted from each request's
    # scheduled time. (Single-row overload would need a load generator faster than one core.)
    sustainable = best_rate("slipway", "mlp", "rest", 256)
    rate = 2 * sustainable
    log(f"overload: {rate:.0f} req/s of 256 rows offered for {a.overload_seconds:.0f} s")
    samples = []
    gen = subprocess.Popen(["taskset", "-c", str(cc), str(LOADGEN), "--url", f"{base}/mlp/infer", "--body", str(BODIES / "native_256.json"),
                            "--rate", str(rate), "--concurrency", "64", "--seconds", str(a.overload_seconds)],
                           stdout=subprocess.PIPE, text=True, cwd=REPO)
    while gen.poll() is None:
        samples.append(srv.rss_mb())
        time.sleep(1)
    over = json.loads(gen.stdout.read().strip().splitlines()[-1])
    overload = {"sustainable_s": sustainable, "offered_target_s": rate, **over, "rss_mb_samples": samples}
    srv.stop()

    # Batching off, for the ratio.
    log("slipway, batching off")
    srv = slipway_server(sc, ["--max-batch-size", "0"])
    for c in (64,):
        add("slipway-nobatch", "mlp", "rest", 1, c, wrk(f"{base}/mlp/infer", BODIES / "native_1.json", c, secs, cc))
        add("slipway-nobatch", "mlp_onnx", "rest", 1, c, wrk(f"{base}/mlp_onnx/infer", BODIES / "onnx_1.json", c, secs, cc))
        add("slipway-nobatch", "mlp_wide", "rest", 1, c, wrk(f"{base}/mlp_wide/infer", BODIES / "native_1.json", c, secs, cc))
    srv.stop()

    # MLServer, both worker settings.
    for pw in (0, 1):
        log(f"mlserver parallel_workers={pw}")
        run([VENV_PY, "bench/serve_models.py", WORK, "--parallel-workers", pw])
        srv = Server([MLSERVER, "start", WORK / "mlserver"], f"http://{MLSERVER_HTTP}/v2/health/ready", core=sc)
        name = f"mlserver-pw{pw}"
        for model in ("mlp", "logistic"):
            for c in (1, 8, 32, 64):
                add(name, model, "rest", 1, c, wrk(f"http://{MLSERVER_HTTP}/v2/models/{model}/infer", BODIES / f"mlserver_{model}_1.json", c, secs, cc))
            add(name, model, "rest", 256, 8, wrk(f"http://{MLSERVER_HTTP}/v2/models/{model}/infer", BODIES / f"mlserver_{model}_256.json", 8, secs, cc))
        add(name, "mlp", "grpc", 1, 32, loadgen(["--grpc", MLSERVER_GRPC, "--model", "mlp", "--body", BODIES / "mlserver_mlp_1.json",
                                                 "--concurrency", 32, "--seconds", secs], cc))
        rss[f"{name}_mb"] = srv.rss_mb()
        srv.stop()

    # Compute anchors, in-process, one thread.
    log("onnxruntime and slipway in-process")
    ort = json.loads(run(["taskset", "-c", sc, VENV_PY, "bench/ort_bench.py", WORK]).stdout.strip().splitlines()[-1])
    compute = {}
    for model in ("logistic", "mlp"):
        fixture = WORK / "onnx" / f"{model}.json"
        fixture.write_text((BODIES / "onnx_256.json").read_text())
        lines = run(["taskset", "-c", sc, RUNTIME_BENCH, "--rows", "1,256", WORK / "onnx" / f"{model}.onnx"]).stdout
        compute[model] = json.loads(lines.strip().splitlines()[-1])

    payload = {"machine": machine(), "results": results, "overload": overload, "rss": rss,
               "onnxruntime": ort, "slipway_compute": compute,
               "seconds": secs, "server_core": sc, "client_core": cc}
    md, payload["targets"] = report(payload)
    print(md)
    path = write_results("serve", payload, md)
    log(f"wrote {path}")


def report(p: dict) -> tuple[str, list]:
    """The results table and the issue's targets, as markdown (and the targets as rows)."""
    results, overload, ort, compute, rss = p["results"], p["overload"], p["onnxruntime"], p["slipway_compute"], p["rss"]

    def best(server_prefix, model, protocol="rest", rows=1, conc=None):
        # "mlserver" is either worker setting (its best); other names are exact.
        xs = [r for r in results
              if (r["server"].startswith(server_prefix) if server_prefix == "mlserver" else r["server"] == server_prefix)
              and r["model"] == model and r["protocol"] == protocol and r["rows"] == rows
              and (conc is None or r["concurrency"] == conc)]
        return max(xs, key=lambda r: r["req_s"]) if xs else None

    ceiling = best("bare-axum", "-", conc=32)["req_s"]
    m32 = best("mlserver", "mlp", conc=32)
    m256 = best("mlserver", "mlp", rows=256)
    ort_row = ort["mlp"]["ort_batch256_us_per_row"]
    sw_row = next((b["us_per_row"] for b in compute["mlp"].get("batches", []) if b["rows"] == 256), float("nan"))
    samples = overload.get("rss_mb_samples", [])
    targets = []
    for label, model in (("native MLP", "mlp"), ("ONNX MLP", "mlp_onnx")):
        s32, s8 = best("slipway", model, conc=32), best("slipway", model, conc=8)
        s256 = best("slipway", model, rows=256)
        on64, off64 = best("slipway", model, conc=64)["req_s"], best("slipway-nobatch", model, conc=64)["req_s"]
        targets += [
            [f"{label}: single-row REST c=32, Slipway / MLServer best", f"{s32['req_s'] / m32['req_s']:.0f}× ({s32['req_s']:,.0f} / {m32['req_s']:,.0f} req/s)", "≥ 50×"],
            [f"{label}: single-row REST c=32, Slipway / bare axum", f"{s32['req_s'] / ceiling:.2f} ({ceiling:,.0f} req/s)", "≥ 0.5"],
            [f"{label}: p99 at c=8", f"{s8['p99_ms']:.2f} ms", "≤ 2 ms"],
            [f"{label}: 256-row JSON rows/s, Slipway / MLServer best", f"{s256['rows_s'] / m256['rows_s']:.1f}× ({s256['rows_s']:,.0f} / {m256['rows_s']:,.0f})", "≥ 5×"],
            [f"{label}: batching on / off, 64 single-row clients", f"{on64 / off64:.2f}× ({on64:,.0f} / {off64:,.0f} req/s)", "≥ 2×"],
        ]
    cols32, cols256 = best("slipway", "mlp_cols", conc=32), best("slipway", "mlp_cols", rows=256)
    if cols32 and cols256:  # older result files have no per-column twin
        targets.append(["native MLP, one tensor per column (30 inputs): single-row c=32 / 256-row JSON",
                        f"{cols32['req_s']:,.0f} req/s ({cols32['req_s'] / m32['req_s']:.0f}×) / {cols256['rows_s']:,.0f} rows/s ({cols256['rows_s'] / m256['rows_s']:.1f}×)", ""])
    wide_on, wide_off = best("slipway", "mlp_wide", conc=64), best("slipway-nobatch", "mlp_wide", conc=64)
    if wide_on and wide_off:
        targets.append(["compute-bound MLP (512×512 hidden): batching on / off, 64 single-row clients",
                        f"{wide_on['req_s'] / wide_off['req_s']:.2f}× ({wide_on['req_s']:,.0f} / {wide_off['req_s']:,.0f} req/s)", ""])
    sbin = max(r["rows_s"] for r in results if r["protocol"] == "rest-binary")
    targets += [
        ["256-row binary tensors, rows/s (best MLP)", f"{sbin:,.0f}", "≥ 2,000,000"],
        ["ONNX MLP per-row compute at 256, Slipway / onnxruntime in-process", f"{sw_row / ort_row:.2f}× ({sw_row:.3f} / {ort_row:.3f} µs)", "≤ 1.5×"],
        ["overload (2× sustainable 256-row JSON, native MLP): accepted p50 / p99", f"{overload['p50_us'] / 1000:.1f} / {overload['p99_us'] / 1000:.1f} ms", "p99 < 10 ms"],
        ["overload: answered / shed (503) / failed", f"{overload['ok']:,} / {overload['shed']:,} / {overload['failed']}", "shed > 0, failed 0"],
        ["overload: offered / answered per s", f"{overload['offered_per_s']:,.0f} / {overload['ok_per_s']:,.0f} (sustainable {overload.get('sustainable_s', 0):,.0f})", "2× sustainable"],
        ["overload: RSS after 2 s → at the end", f"{samples[min(2, len(samples) - 1)] if samples else 0} → {samples[-1] if samples else 0} MB", "flat"],
        ["RSS: Slipway (6 models, after the runs) / MLServer pw=0 / pw=1", f"{rss.get('slipway_after_load_mb')} / {rss.get('mlserver-pw0_mb')} / {rss.get('mlserver-pw1_mb')} MB", ""],
    ]
    rows_md = [[r["server"], r["model"], r["protocol"], str(r["rows"]), str(r["concurrency"]), f"{r['req_s']:,.0f}",
                f"{r['rows_s']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}"] for r in results]
    md = "\n\n".join([
        table(["server", "model", "protocol", "rows", "clients", "req/s", "rows/s", "p50 ms", "p99 ms"], rows_md),
        table(["figure", "measured", "target"], targets),
        f"onnxruntime in-process: {json.dumps(ort)}\n\nslipway in-process: "
        + json.dumps({m: [(b['rows'], round(b['us_per_row'], 3)) for b in c.get('batches', [])] for m, c in compute.items()})
        + f"\n\nRSS: {json.dumps(rss)}",
    ])
    return md, targets


if __name__ == "__main__":
    try:
        main()
    finally:
        for server in STARTED:
            server.stop()
