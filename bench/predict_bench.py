"""Driver for bench/predict.sh: batch-scoring throughput on one core and peak memory of training.

Expects a release build and the 1M-row files made by make_predict_data.py in bench/work:
  german_credit-1m.csv   1,000,000 rows of german_credit.csv (20 features, 13 categorical)
  breast_cancer-1m.csv   1,000,000 rows of breast_cancer.csv (30 numeric features, binary target)

Scoring: `taskset -c 0 slipway predict ... --json` run `--repeats` times per (data, package);
reported: median of slipway's own rows_per_second (time after the package is loaded, reading,
encoding, forward pass and writing the output CSV included) and of rows / whole-process wall time.
Each run is wrapped in `/usr/bin/time -v` for its peak RSS.

Memory: `/usr/bin/time -v slipway train` on breast_cancer-1m.csv (logistic; mlp --epochs 2),
peak RSS = "Maximum resident set size".
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchlib import REPO, SLIPWAY, WORK, machine, median, table, write_results

TIME = "/usr/bin/time"
GIB = 2**30

DATA = {
    "german_credit": {"target": "creditability", "positive": "bad", "source": REPO / "data" / "german_credit.csv"},
    "breast_cancer": {"target": "diagnosis", "positive": "malignant", "source": REPO / "data" / "breast_cancer.csv"},
}


def timed(cmd: list[str], pin: str | None = None) -> dict:
    """Runs cmd under /usr/bin/time -v (and taskset when pinned); returns stdout JSON, wall, peak RSS."""
    tv = WORK / "time-v.txt"
    full = [TIME, "-v", "-o", str(tv)]
    if pin is not None:
        full += ["taskset", "-c", pin]
    full += cmd
    t0 = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(f"command failed ({proc.returncode}): {' '.join(full)}\n{proc.stdout}\n{proc.stderr}\n")
        raise SystemExit(1)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    out = json.loads(lines[-1]) if lines else {}
    rss_kb = 0
    for line in tv.read_text().splitlines():
        if "Maximum resident set size" in line:
            rss_kb = int(line.rsplit(":", 1)[1])
    return {"out": out, "wall": wall, "peak_rss_bytes": rss_kb * 1024}


def train_package(name: str, model: str, data: Path, out: Path, extra: list[str]) -> dict:
    d = DATA[name]
    cmd = [str(SLIPWAY), "train", "--data", str(data), "--target", d["target"], "--positive-class", d["positive"],
           "--model", model, "--out", str(out), "--json", *extra]
    r = timed(cmd)
    r["command"] = cmd
    return r


def check_scores(name: str, pkg: Path, big: Path, scores: Path, n_check: int = 20000) -> dict:
    """Scores of the first n_check rows of the big file must equal the scores of their source rows."""
    src_scores = WORK / f"check-{name}-source-scores.csv"
    subprocess.run([str(SLIPWAY), "predict", "--model", str(pkg), "--data", str(DATA[name]["source"]),
                    "--out", str(src_scores)], check=True, capture_output=True, cwd=REPO)
    with open(src_scores, newline="") as f:
        source = [row["probability"] for row in csv.DictReader(f)]
    idx = np.load(big.with_suffix(".idx.npy"))
    mismatches = 0
    rows = 0
    with open(scores, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= n_check:
                break
            rows += 1
            mismatches += row["probability"] != source[idx[i]]
    return {"checked_rows": rows, "mismatches": mismatches}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--core", default="0", help="CPU for taskset")
    args = ap.parse_args()
    # Other work on the machine skews the timings; the load average is kept with the results.
    load_before = [round(x, 2) for x in os.getloadavg()]

    pkgs = {}
    for name in DATA:
        for model, extra in (("logistic", []), ("mlp", ["--hidden", "32,16"])):
            out = WORK / f"pkg-{name}-{model}"
            r = train_package(name, model, DATA[name]["source"], out, extra)
            pkgs[(name, model)] = {"dir": out, "train": r}
            print(f"trained {name} {model}: test AUC {r['out']['metrics']['roc_auc']:.4f}", file=sys.stderr)

    scoring = []
    for name in DATA:
        big = WORK / f"{name}-1m.csv"
        for model in ("logistic", "mlp"):
            pkg = pkgs[(name, model)]["dir"]
            scores = WORK / f"scores-{name}-{model}.csv"
            cmd = [str(SLIPWAY), "predict", "--model", str(pkg), "--data", str(big), "--out", str(scores), "--json"]
            runs = [timed(cmd, pin=args.core) for _ in range(args.repeats)]
            rows = runs[0]["out"]["rows"]
            rec = {
                "data": big.name,
                "data_bytes": big.stat().st_size,
                "model": model,
                "rows": rows,
                "rows_per_second": median([r["out"]["rows_per_second"] for r in runs]),
                "rows_per_second_wall": median([rows / r["wall"] for r in runs]),
                "seconds": median([r["out"]["seconds"] for r in runs]),
                "wall_seconds": median([r["wall"] for r in runs]),
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
                "rows_per_second_runs": [r["out"]["rows_per_second"] for r in runs],
                "pinned_core": args.core,
                "check": check_scores(name, pkg, big, scores),
                "command": ["taskset", "-c", args.core, *cmd],
            }
            rec["mb_per_second"] = rec["data_bytes"] / rec["seconds"] / 1e6
            scoring.append(rec)
            print(f"predict {name} {model}: {rec['rows_per_second']:,.0f} rows/s", file=sys.stderr)

    memory = []
    big = WORK / "breast_cancer-1m.csv"
    for model, extra in (("logistic", []), ("mlp", ["--hidden", "32,16", "--epochs", "2"])):
        r = train_package("breast_cancer", model, big, WORK / f"pkg-mem-{model}", extra)
        memory.append({
            "data": big.name,
            "data_bytes": big.stat().st_size,
            "model": model,
            "args": extra,
            "rows": r["out"]["rows"],
            "peak_rss_bytes": r["peak_rss_bytes"],
            "wall_seconds": r["wall"],
            "fit_seconds": r["out"]["fit"]["seconds"],
            "iterations": r["out"]["fit"]["iterations"],
            "converged": r["out"]["fit"]["converged"],
            "epochs_run": r["out"]["fit"]["epochs_run"],
            "roc_auc": r["out"]["metrics"]["roc_auc"],
            "command": [TIME, "-v", *r["command"]],
        })
        print(f"train 1M {model}: peak RSS {r['peak_rss_bytes'] / GIB:.2f} GiB", file=sys.stderr)

    def ok(flag: bool) -> str:
        return "yes" if flag else "**no**"

    score_table = table(
        ["data (1M rows)", "model", "rows/s (≥ 500,000)", "rows/s by process wall", "MB/s of CSV", "peak RSS MiB",
         "scores match source rows"],
        [[
            r["data"], r["model"], f"{r['rows_per_second']:,.0f} {ok(r['rows_per_second'] >= 500_000)}",
            f"{r['rows_per_second_wall']:,.0f}", f"{r['mb_per_second']:.0f}", f"{r['peak_rss_bytes'] / 2**20:.0f}",
            f"{r['check']['checked_rows'] - r['check']['mismatches']}/{r['check']['checked_rows']}",
        ] for r in scoring],
    )
    mem_table = table(
        ["data", "model", "peak RSS (< 2 GiB)", "wall s", "fit s", "L-BFGS iterations / epochs", "test AUC"],
        [[
            f"{m['data']} ({m['rows']['read']:,} rows × 30 numeric)", f"{m['model']} {' '.join(m['args'])}".strip(),
            f"{m['peak_rss_bytes'] / GIB:.2f} GiB {ok(m['peak_rss_bytes'] < 2 * GIB)}",
            f"{m['wall_seconds']:.1f}", f"{m['fit_seconds']:.1f}",
            (f"{m['iterations']} (converged: {'yes' if m['converged'] else 'no'})" if m["model"] == "logistic"
             else f"{m['epochs_run']} epochs"),
            f"{m['roc_auc']:.4f}",
        ] for m in memory],
    )
    markdown = "\n".join([
        f"Batch scoring, {time.strftime('%Y-%m-%d')}, `taskset -c {args.core}`, median of {args.repeats} runs",
        "", score_table, "", "Peak memory of `slipway train` (`/usr/bin/time -v`):", "", mem_table,
    ])
    payload = {
        "kind": "predict",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine(), "loadavg_at_start": load_before},
        "settings": {"repeats": args.repeats, "core": args.core},
        "packages": {
            f"{n}-{m}": {"dir": str(v["dir"].relative_to(REPO)), "test_auc": v["train"]["out"]["metrics"]["roc_auc"],
                         "command": v["train"]["command"]}
            for (n, m), v in pkgs.items()
        },
        "scoring": scoring,
        "train_memory": memory,
    }
    path = write_results("predict", payload, markdown)
    print(markdown)
    print(f"\nwrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
