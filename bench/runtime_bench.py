"""Driver for bench/runtime.sh: in-process latency of Slipway's ONNX runtime against onnxruntime.

For every conformance model (conformance/cases/*.onnx except the `op_*` operator cases and
`unsupported_svm`) and for a ~1 MB random forest made here (bench/work/runtime/rf_1mb.onnx):

- Slipway: `crates/slipway-runtime/examples/runtime_bench.rs` (built in release by runtime.sh),
  which calls `OnnxModel::from_bytes` and `Model::infer` in process.
- onnxruntime: this file with `--ort-worker`, which calls `InferenceSession(...)` and
  `sess.run(None, feeds)` with intra_op_num_threads=1, inter_op_num_threads=1 and sequential
  execution, on the same .onnx file and the same inputs.

Both sides tile the fixture's input rows into batches of 1 and 256 rows, warm up for 50 ms, then
time every call on its own until --budget-ms has passed (at least 20 calls) and keep the median.
Load is the median of --loads loads (Slipway: read + decode + plan + warm-up run; onnxruntime:
session creation, and session creation + the first 1-row run). Each side runs in its own process,
pinned with `taskset -c CORE`; the two alternate --repeats times and each figure is the median
over repeats.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, WORK, machine, table, write_results  # noqa: E402

CASES = REPO / "conformance" / "cases"
RWORK = WORK / "runtime"
EXAMPLE = REPO / "target" / "bench" / "release" / "examples" / "runtime_bench"
SKIP = {"unsupported_svm"}
BIG = "rf_1mb"
DTYPES = {"FP32": "float32", "FP64": "float64", "INT64": "int64", "BOOL": "bool", "BYTES": "object"}


# ---------------------------------------------------------------- onnxruntime worker (own process)

def tiled(fixture: dict, rows: int) -> dict:
    import numpy as np

    feeds = {}
    for inp in fixture["inputs"]:
        shape = inp["shape"]
        data = [float("nan") if v is None else v for v in inp["data"]]
        a = np.array(data, dtype=DTYPES[inp["datatype"]]).reshape(shape)
        idx = np.arange(rows) % shape[0]
        feeds[inp["name"]] = np.ascontiguousarray(a[idx])
    return feeds


def checksum(outputs: list) -> float:
    import numpy as np

    total = 0.0
    for v in outputs:
        if isinstance(v, list) and v and isinstance(v[0], dict):  # ZipMap: list of {class: p}
            total += sum(float(p) for row in v for p in row.values())
        elif isinstance(v, np.ndarray) and v.dtype.kind in "fiub":
            total += float(np.sum(v.astype(np.float64)))
    return total


def time_calls(budget_s: float, f) -> tuple[float, float, int]:
    """Same method as the Rust example: 50 ms warm-up, then every call timed on its own."""
    perf = time.perf_counter
    end = perf() + 0.05
    w = 0
    while w < 5 or perf() < end:
        f()
        w += 1
    samples = []
    start = perf()
    while len(samples) < 20 or perf() - start < budget_s:
        t = perf()
        f()
        samples.append((perf() - t) * 1e6)
    return statistics.median(samples), min(samples), len(samples)


def ort_worker(models: list[str], rows_list: list[int], budget_ms: float, loads: int) -> int:
    import onnxruntime as ort

    def options():
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.inter_op_num_threads = 1
        o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        return o

    for m in models:
        path = Path(m)
        fixture = json.loads(path.with_suffix(".json").read_text())
        one = tiled(fixture, 1)
        create, create_run = [], []
        sess = None
        for _ in range(max(loads, 1)):
            t = time.perf_counter()
            s = ort.InferenceSession(str(path), options(), providers=["CPUExecutionProvider"])
            t1 = time.perf_counter()
            s.run(None, one)
            t2 = time.perf_counter()
            create.append((t1 - t) * 1e3)
            create_run.append((t2 - t) * 1e3)
            sess = s
        batches = []
        for rows in rows_list:
            feeds = tiled(fixture, rows)
            out = sess.run(None, feeds)
            med, mn, calls = time_calls(budget_ms / 1e3, lambda: sess.run(None, feeds))
            batches.append({
                "rows": rows, "us_per_call": med, "us_per_call_min": mn, "us_per_row": med / rows,
                "calls": calls, "checksum": checksum(out),
                "output_shapes": [list(getattr(o, "shape", (len(o),))) for o in out],
            })
        print(json.dumps({
            "case": path.stem, "runtime": "onnxruntime", "version": ort.__version__,
            "model_bytes": path.stat().st_size,
            "load_ms": statistics.median(create_run), "load_ms_min": min(create_run),
            "create_ms": statistics.median(create), "loads": len(create),
            "batches": batches,
        }), flush=True)
    return 0


# ---------------------------------------------------------------- the ~1 MB model

def make_big_model(target_bytes: int) -> dict:
    """A RandomForestClassifier on data/breast_cancer.csv with as many trees as give ~target_bytes."""
    import csv

    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    RWORK.mkdir(parents=True, exist_ok=True)
    onnx_path, fixture_path = RWORK / f"{BIG}.onnx", RWORK / f"{BIG}.json"
    with open(REPO / "data" / "breast_cancer.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cols = [c for c in rows[0] if c != "diagnosis"]
    x = np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float32)
    y = np.array([r["diagnosis"] for r in rows])

    def export(n):
        m = RandomForestClassifier(n_estimators=n, random_state=42).fit(x, y)
        return to_onnx(m, x[:1], options={id(m): {"zipmap": False}}).SerializeToString()

    # Bytes grow linearly with the trees: size 16 trees, scale, then adjust once.
    n = 16
    per_tree = len(export(n)) / n
    n = max(1, round(target_bytes / per_tree))
    blob = export(n)
    n = max(1, round(n * target_bytes / len(blob)))
    blob = export(n)
    onnx_path.write_bytes(blob)
    fixture = {
        "case": BIG,
        "notes": f"RandomForestClassifier, {n} trees (random_state 42, full depth) on breast_cancer, zipmap off",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [24, x.shape[1]],
                    "data": [float(v) for v in x[:24].ravel()]}],
    }
    fixture_path.write_text(json.dumps(fixture) + "\n")
    return {"path": str(onnx_path.relative_to(REPO)), "bytes": len(blob), "trees": n}


# ---------------------------------------------------------------- driver

def run_lines(cmd: list[str]) -> list[dict]:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        sys.stderr.write(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
        raise SystemExit(1)
    return [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]


def is_tree(rec: dict) -> bool:
    return any("TreeEnsemble" in op for op in rec.get("operators", []))


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each side")
    ap.add_argument("--core", default="1", help="CPU for taskset ('' to not pin)")
    ap.add_argument("--budget-ms", type=float, default=500, help="timed calls per batch size")
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--rows", default="1,256")
    ap.add_argument("--big-bytes", type=int, default=1_000_000, help="size of the generated forest")
    ap.add_argument("--example", default=str(EXAMPLE))
    ap.add_argument("--ort-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("cases", nargs="*", help="case names (default: every non-op_ case, and rf_1mb)")
    args = ap.parse_args()
    rows_list = [int(r) for r in args.rows.split(",")]
    if args.ort_worker:
        return ort_worker(args.cases, rows_list, args.budget_ms, args.loads)

    load_before = [round(x, 2) for x in os.getloadavg()]
    # The runtime may have uncommitted changes: identify the exact source that was measured.
    diff = subprocess.run(["git", "diff", "HEAD", "--", "crates"], capture_output=True, cwd=REPO).stdout
    source = {"git_diff_crates_sha256": hashlib.sha256(diff).hexdigest()[:12] if diff else None,
              "git_diff_crates_files": subprocess.run(["git", "diff", "HEAD", "--name-only", "--", "crates"],
                                                      capture_output=True, text=True, cwd=REPO).stdout.split()}
    names = args.cases or sorted(
        p.stem for p in CASES.glob("*.onnx")
        if not p.stem.startswith("op_") and p.stem not in SKIP and p.with_suffix(".json").exists()
    ) + [BIG]
    big = None
    if BIG in names:
        big = make_big_model(args.big_bytes)
        print(f"made {big['path']}: {big['bytes']:,} bytes, {big['trees']} trees", file=sys.stderr)
    paths = [str((RWORK if n == BIG else CASES) / f"{n}.onnx") for n in names]

    pin = ["taskset", "-c", args.core] if args.core and shutil.which("taskset") else []
    common = ["--rows", args.rows, "--budget-ms", str(int(args.budget_ms)), "--loads", str(args.loads)]
    slip_cmd = [*pin, args.example, *common, *paths]
    ort_cmd = [*pin, sys.executable, str(Path(__file__).resolve()), "--ort-worker", *common, *paths]
    runs = {"slipway": [], "onnxruntime": []}
    for rep in range(args.repeats):
        # Alternate which side goes first so drift in the machine's load hits both alike.
        order = [("slipway", slip_cmd), ("onnxruntime", ort_cmd)]
        for side, cmd in order if rep % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            runs[side].append({r["case"]: r for r in run_lines(cmd)})
            print(f"repeat {rep + 1}/{args.repeats} {side}: {time.perf_counter() - t:.1f} s", file=sys.stderr)

    results = []
    for n in names:
        s_runs = [r[n] for r in runs["slipway"]]
        o_runs = [r[n] for r in runs["onnxruntime"]]
        s0 = s_runs[0]
        rec = {
            "case": n, "engine": s0["engine"], "tree": is_tree(s0), "model_bytes": s0["model_bytes"],
            "operators": s0["operators"],
            "load_ms": {"slipway": med([r["load_ms"] for r in s_runs]),
                        "onnxruntime": med([r["load_ms"] for r in o_runs]),
                        "onnxruntime_create": med([r["create_ms"] for r in o_runs]),
                        "slipway_runs": [r["load_ms"] for r in s_runs],
                        "onnxruntime_runs": [r["load_ms"] for r in o_runs]},
            "batches": [],
        }
        for i, rows in enumerate(rows_list):
            sb = [r["batches"][i] for r in s_runs]
            ob = [r["batches"][i] for r in o_runs]
            cs, co = sb[0]["checksum"], ob[0]["checksum"]
            b = {
                "rows": rows,
                "slipway_us": med([x["us_per_call"] for x in sb]),
                "onnxruntime_us": med([x["us_per_call"] for x in ob]),
                "slipway_us_runs": [x["us_per_call"] for x in sb],
                "onnxruntime_us_runs": [x["us_per_call"] for x in ob],
                "slipway_us_min": min(x["us_per_call_min"] for x in sb),
                "onnxruntime_us_min": min(x["us_per_call_min"] for x in ob),
                "calls": {"slipway": [x["calls"] for x in sb], "onnxruntime": [x["calls"] for x in ob]},
                "slipway_minor_faults_per_call": med([x.get("minor_faults_per_call", 0.0) for x in sb]),
                "checksum": {"slipway": cs, "onnxruntime": co},
                "checksums_agree": abs(cs - co) <= 1e-4 * max(1.0, abs(cs), abs(co)),
            }
            b["ratio"] = b["slipway_us"] / b["onnxruntime_us"]
            b["target"] = 1.0 if rec["tree"] else 1.5
            b["meets_target"] = b["ratio"] <= b["target"]
            rec["batches"].append(b)
        results.append(rec)

    def ok(flag: bool) -> str:
        return "yes" if flag else "**no**"

    lat_rows = []
    for r in results:
        for b in r["batches"]:
            lat_rows.append([
                r["case"], r["engine"] + (" (trees)" if r["tree"] else ""), str(b["rows"]),
                f"{b['slipway_us']:.1f}", f"{b['onnxruntime_us']:.1f}",
                f"{b['slipway_us'] / b['rows']:.2f}", f"{b['onnxruntime_us'] / b['rows']:.2f}",
                f"{b['ratio']:.2f}", f"≤ {b['target']:g} {ok(b['meets_target'])}",
                "; ".join(
                    ([] if b["checksums_agree"] else ["**checksums differ**"])
                    + ([f"slipway page-faults {b['slipway_minor_faults_per_call']:.0f}/call"]
                       if b["slipway_minor_faults_per_call"] >= 1 else [])),
            ])
    lat_table = table(
        ["case", "engine", "rows", "slipway µs/call", "onnxruntime µs/call", "slipway µs/row",
         "onnxruntime µs/row", "ratio (slipway/ort)", "target", "note"], lat_rows)
    load_table = table(
        ["case", "model KB", "slipway load+warm ms", "onnxruntime session ms", "onnxruntime session + 1st run ms",
         "ratio", "< 50 ms"],
        [[r["case"], f"{r['model_bytes'] / 1e3:.1f}", f"{r['load_ms']['slipway']:.2f}",
          f"{r['load_ms']['onnxruntime_create']:.2f}", f"{r['load_ms']['onnxruntime']:.2f}",
          f"{r['load_ms']['slipway'] / r['load_ms']['onnxruntime']:.2f}",
          ok(r["load_ms"]["slipway"] < 50)] for r in results],
    )
    misses = [f"{r['case']} ({b['rows']} rows: {b['ratio']:.2f}× vs ≤ {b['target']:g})"
              for r in results for b in r["batches"] if not b["meets_target"]]
    ort_version = runs["onnxruntime"][0][names[0]].get("version", "")
    pin_text = f"`taskset -c {args.core}`" if pin else "not pinned"
    commit = machine().get("git_commit", "")
    tree = (f"commit `{commit}` + uncommitted crates diff `{source['git_diff_crates_sha256']}`"
            if source["git_diff_crates_sha256"] else f"commit `{commit}`")
    markdown = "\n".join([
        f"Runtime latency, {time.strftime('%Y-%m-%d')}, one thread, {pin_text}, onnxruntime {ort_version}; "
        f"median call of {args.budget_ms:g} ms of calls, median of {args.repeats} runs; {tree}",
        "", lat_table, "",
        f"Load (median of {args.loads} loads, median of {args.repeats} runs):", "", load_table, "",
        "Misses: " + ("; ".join(misses) if misses else "none"),
    ])
    payload = {
        "kind": "runtime",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine(), "loadavg_at_start": load_before, "onnxruntime": ort_version},
        "source": source,
        "settings": {"repeats": args.repeats, "core": args.core, "budget_ms": args.budget_ms, "loads": args.loads,
                     "rows": rows_list},
        "commands": {"slipway": slip_cmd, "onnxruntime": ort_cmd},
        "big_model": big,
        "results": results,
        "raw": runs,
    }
    path = write_results("runtime", payload, markdown)
    print(markdown)
    print(f"\nwrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
