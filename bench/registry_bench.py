"""Driver for bench/registry.sh: latency of the model registry CLI (register, resolve, list, verify).

Everything runs against fresh registries under bench/work/registry-bench/ (deleted first):

  reg-credit/   `credit`: registrations of ~10 MB packages (MLP --hidden 1024,1200, f64 weights)
  reg-scale/    1,000 models x 20 versions: one small package registered through the CLI, the
                other 19,999 version rows copied from it straight into registry.db with sqlite3

Timings are whole-process wall times measured around subprocess.run (perf_counter), stdout and
stderr captured; each figure is a median. The process start-up floor is the wall time of
`slipway --version`, run interleaved with the read commands so that drift cancels; "net" =
median(command) - median(--version). The CPU time of every child (user+sys) is recorded too.

Only the standard library is used (the machine's python3 is enough).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO, SLIPWAY, WORK, machine, table, write_results

BENCH = WORK / "registry-bench"
DATA = REPO / "data" / "breast_cancer.csv"

TARGETS = {
    "register_ms": 50.0,
    "resolve_net_ms": 1.0,
    "list_ms": 100.0,
}


# ---------------------------------------------------------------------------------------------
# running and timing


def run(cmd: list[str], ok_codes: tuple[int, ...] = (0,)) -> dict:
    """Runs cmd once; returns its wall and CPU seconds, peak RSS, exit code and stdout.

    stdout/stderr go to temporary files and the child is reaped with wait4, so the CPU time and
    peak RSS are this child's own.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode not in ok_codes:
        sys.stderr.write(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{stdout[-2000:]}\n{stderr[-2000:]}\n")
        raise SystemExit(1)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
            "rc": proc.returncode, "stdout": stdout}


def stats(samples: list[dict]) -> dict:
    walls = sorted(s["wall"] * 1000 for s in samples)
    cpus = [s["cpu"] * 1000 for s in samples]
    return {
        "n": len(walls),
        "median_ms": statistics.median(walls),
        "min_ms": walls[0],
        "max_ms": walls[-1],
        "p90_ms": walls[min(len(walls) - 1, int(round(0.9 * (len(walls) - 1))))],
        "cpu_median_ms": statistics.median(cpus),
        "maxrss_mib_max": max(s["maxrss_kib"] for s in samples) / 1024,
        "samples_ms": [round(w, 3) for w in (s["wall"] * 1000 for s in samples)],
    }


def slipway(*args: str) -> list[str]:
    return [str(SLIPWAY), *args]


def interleaved(cmd: list[str], runs: int, check) -> tuple[list[dict], list[dict]]:
    """Runs `slipway --version` and cmd alternately `runs` times (after 2 warm-ups of each)."""
    floor, timed = [], []
    for _ in range(2):
        run(slipway("--version"))
        check(run(cmd))
    for _ in range(runs):
        floor.append(run(slipway("--version")))
        r = run(cmd)
        check(r)
        timed.append(r)
    return floor, timed


# ---------------------------------------------------------------------------------------------
# packages


def train(out: Path, model: str, seed: int, extra: list[str]) -> dict:
    cmd = slipway("train", "--data", str(DATA), "--target", "diagnosis", "--model", model,
                  "--seed", str(seed), "--out", str(out), *extra)
    run(cmd)
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    manifest = json.loads((out / "slipway.json").read_text())
    return {"dir": str(out.relative_to(REPO)), "files": files, "payload_sha256": manifest["payload"]["sha256"],
            "command": cmd}


# ---------------------------------------------------------------------------------------------
# bulk fill of the scale registry


def bulk_fill(db: Path, models: int, versions: int, first_model: str, alias: str) -> dict:
    """Copies version 1 of `first_model` to models model-0000.. x versions 1..`versions`.

    Rows written: models, versions, aliases (`alias` on every model), alias_history and audit
    (one `register` line per version), as `slipway register --alias` would have written them.
    """
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys = ON")
    (model_id, created_at, created_by) = con.execute(
        "SELECT id, created_at, created_by FROM models WHERE name = ?", (first_model,)).fetchone()
    row = con.execute(
        "SELECT digest, manifest, files, description, tags, created_at, created_by FROM versions "
        "WHERE model_id = ? AND version = 1", (model_id,)).fetchone()
    digest, manifest, files, description, tags, v_at, v_by = row
    with con:
        for m in range(models):
            name = f"model-{m:04d}"
            if name == first_model:
                mid = model_id
                con.execute("UPDATE models SET next_version = ? WHERE id = ?", (versions + 1, mid))
            else:
                cur = con.execute(
                    "INSERT INTO models (name, next_version, created_at, created_by) VALUES (?, ?, ?, ?)",
                    (name, versions + 1, created_at, created_by))
                mid = cur.lastrowid
            first = 2 if name == first_model else 1
            con.executemany(
                "INSERT INTO versions (model_id, version, digest, manifest, files, description, tags, "
                "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(mid, v, digest, manifest, files, description, tags, v_at, v_by)
                 for v in range(first, versions + 1)])
            con.executemany(
                "INSERT INTO audit (at, by, action, model, version, detail) VALUES (?, ?, 'register', ?, ?, ?)",
                [(v_at, v_by, name, v, f"digest {digest}") for v in range(first, versions + 1)])
            # The alias points at a different version per model (1..versions), like a real fleet.
            target = (m * 7) % versions + 1
            prev = con.execute("SELECT version FROM aliases WHERE model_id = ? AND alias = ?",
                               (mid, alias)).fetchone()
            con.execute(
                "INSERT INTO aliases (model_id, alias, version) VALUES (?, ?, ?) "
                "ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version",
                (mid, alias, target))
            con.execute(
                "INSERT INTO alias_history (model_id, alias, from_version, to_version, action, at, by, reason) "
                "VALUES (?, ?, ?, ?, 'promote', ?, ?, 'bench bulk fill')",
                (mid, alias, prev[0] if prev else None, target, v_at, v_by))
    fk = con.execute("PRAGMA foreign_key_check").fetchall()
    counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("models", "versions", "aliases", "alias_history", "audit")}
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    if fk:
        raise SystemExit(f"bulk fill broke foreign keys: {fk[:5]}")
    return {"seconds": time.perf_counter() - t0, "rows": counts,
            "db_bytes": db.stat().st_size, "manifest_bytes": len(manifest)}


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--register-runs", type=int, default=10, help="registrations per case (>= 10)")
    ap.add_argument("--show-runs", type=int, default=50, help="runs of `models show` (>= 30)")
    ap.add_argument("--list-runs", type=int, default=10, help="runs of `models list --json` (>= 10)")
    ap.add_argument("--hidden", default="1024,1200", help="MLP hidden sizes of the ~10 MB package")
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--versions", type=int, default=20)
    args = ap.parse_args()
    if args.register_runs < 10 or args.show_runs < 30 or args.list_runs < 10:
        ap.error("need --register-runs >= 10, --show-runs >= 30, --list-runs >= 10")

    shutil.rmtree(BENCH, ignore_errors=True)
    BENCH.mkdir(parents=True)
    reg = BENCH / "reg-credit"
    scale = BENCH / "reg-scale"
    results: dict = {"targets": TARGETS, "args": vars(args)}

    # --- packages: distinct seeds give distinct weights, hence distinct payload blobs.
    print(f"training {args.register_runs + 1} MLP packages (--hidden {args.hidden}, --epochs 1) ...", file=sys.stderr)
    big = [train(BENCH / f"pkg-10mb-seed{s}", "mlp", s, ["--hidden", args.hidden, "--epochs", "1"])
           for s in range(args.register_runs + 1)]
    if len({p["payload_sha256"] for p in big}) != len(big):
        raise SystemExit("the 10 MB packages are not distinct")
    small = train(BENCH / "pkg-small", "logistic", 42, [])
    results["packages"] = {"big": big, "small": small}
    payload_mb = big[0]["files"]["model.safetensors"] / 1e6
    print(f"payload {payload_mb:.2f} MB, manifest {big[0]['files']['slipway.json']} B", file=sys.stderr)

    # --- 1. registration
    print("registering ...", file=sys.stderr)

    def register(pkg: dict, name: str = "credit", registry: Path = reg) -> dict:
        cmd = slipway("register", str(REPO / pkg["dir"]), "--name", name, "--registry", str(registry), "--json")
        r = run(cmd)
        r["version"] = json.loads(r["stdout"])["version"]
        return r

    first = register(big[0])
    assert first["version"] == 1, first
    # A single first call is noisy (the kernel's page-cache allocation for the 10 MB write
    # varies): also make the first registration of 4 more fresh registries.
    firsts = [first] + [register(big[k], registry=BENCH / f"reg-first-{k}") for k in range(1, 5)]
    assert all(r["version"] == 1 for r in firsts)
    distinct = [register(p) for p in big[1:]]
    same = [register(big[0]) for _ in range(args.register_runs)]
    versions_made = [r["version"] for r in [first, *distinct, *same]]
    assert versions_made == list(range(1, len(versions_made) + 1)), versions_made
    results["register"] = {
        "first": {"wall_ms": first["wall"] * 1000, "cpu_ms": first["cpu"] * 1000,
                  "maxrss_mib": first["maxrss_kib"] / 1024},
        "first_fresh_registries": stats(firsts),
        "distinct": stats(distinct),
        "same": stats(same),
        "command": "slipway register bench/work/registry-bench/pkg-10mb-seedN --name credit "
                   "--registry bench/work/registry-bench/reg-credit --json",
        "payload_bytes": big[0]["files"]["model.safetensors"],
    }

    # --- 2. resolve credit@production
    prod = 5
    promote = run(slipway("promote", f"credit:{prod}", "--to", "production", "--registry", str(reg)))
    results["promote_ms"] = promote["wall"] * 1000

    def check_credit(r: dict) -> None:
        v = json.loads(r["stdout"])
        assert v["version"] == prod and "production" in v["aliases"], v

    show_cmd = slipway("models", "show", "credit@production", "--registry", str(reg), "--json")
    floor, show = interleaved(show_cmd, args.show_runs, check_credit)
    results["resolve"] = {"floor": stats(floor), "show": stats(show),
                          "command": "slipway models show credit@production --registry bench/work/registry-bench/reg-credit --json",
                          "versions_in_model": len(versions_made)}

    # --- 3. 1,000 models x 20 versions
    print(f"filling {args.models} models x {args.versions} versions ...", file=sys.stderr)
    seed = register(small, name="model-0000", registry=scale)
    assert seed["version"] == 1
    results["scale_fill"] = bulk_fill(scale / "registry.db", args.models, args.versions, "model-0000", "production")
    total = args.models * args.versions

    def check_list(r: dict) -> None:
        models = json.loads(r["stdout"])["models"]
        assert len(models) == args.models, len(models)
        assert sum(m["versions"] for m in models) == total
        assert all("production" in m["aliases"] for m in models)

    list_cmd = slipway("models", "list", "--registry", str(scale), "--json")
    list_floor, lists = interleaved(list_cmd, args.list_runs, check_list)
    list_bytes = len(lists[0]["stdout"])

    target500 = (500 * 7) % args.versions + 1

    def check_500(r: dict) -> None:
        v = json.loads(r["stdout"])
        assert v["model"] == "model-0500" and v["version"] == target500, v

    show500_cmd = slipway("models", "show", "model-0500@production", "--registry", str(scale), "--json")
    floor500, show500 = interleaved(show500_cmd, args.show_runs, check_500)

    verify = run(slipway("registry", "verify", "--registry", str(scale), "--json"))
    verify_out = json.loads(verify["stdout"])
    assert verify_out["ok"] and verify_out["versions"] == total, verify_out

    # Registering a real package into the full registry (does the size of the DB show?).
    at_scale = [register(small, name="model-0999", registry=scale) for _ in range(args.register_runs)]

    results["scale"] = {
        "models": args.models, "versions": total,
        "list": stats(lists), "list_floor": stats(list_floor), "list_stdout_bytes": list_bytes,
        "list_command": "slipway models list --registry bench/work/registry-bench/reg-scale --json",
        "show500": stats(show500), "show500_floor": stats(floor500),
        "show500_command": "slipway models show model-0500@production --registry bench/work/registry-bench/reg-scale --json",
        "verify": {"wall_ms": verify["wall"] * 1000, "cpu_ms": verify["cpu"] * 1000,
                   "maxrss_mib": verify["maxrss_kib"] / 1024, "output": verify_out,
                   "command": "slipway registry verify --registry bench/work/registry-bench/reg-scale --json"},
        "register_small_at_scale": stats(at_scale),
    }

    # --- table
    def ms(x: float) -> str:
        return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"

    def verdict(value: float, target: float) -> str:
        return "pass" if value < target else "**FAIL**"

    fl = results["resolve"]["floor"]["median_ms"]
    r = results["register"]
    rows = [
        ["start-up floor: `slipway --version`", f"median of {args.show_runs}", ms(fl), "—", "—", "—"],
        [f"`register` {payload_mb:.1f} MB package, first call (creates the registry)", "1 run",
         ms(r["first"]["wall_ms"]), ms(r["first"]["wall_ms"] - fl), "< 50 ms", verdict(r["first"]["wall_ms"], 50)],
        [f"`register` {payload_mb:.1f} MB package, first call", f"median of {r['first_fresh_registries']['n']} fresh registries",
         ms(r["first_fresh_registries"]["median_ms"]), ms(r["first_fresh_registries"]["median_ms"] - fl), "< 50 ms",
         verdict(r["first_fresh_registries"]["median_ms"], 50)],
        [f"`register` {payload_mb:.1f} MB, new version, new package (new blob)", f"median of {r['distinct']['n']}",
         ms(r["distinct"]["median_ms"]), ms(r["distinct"]["median_ms"] - fl), "< 50 ms",
         verdict(r["distinct"]["median_ms"], 50)],
        [f"`register` {payload_mb:.1f} MB, new version, same package (blob reused)", f"median of {r['same']['n']}",
         ms(r["same"]["median_ms"]), ms(r["same"]["median_ms"] - fl), "< 50 ms",
         verdict(r["same"]["median_ms"], 50)],
        ["`models show credit@production --json`", f"median of {args.show_runs}",
         ms(results["resolve"]["show"]["median_ms"]), ms(results["resolve"]["show"]["median_ms"] - fl),
         "net < 1 ms", verdict(results["resolve"]["show"]["median_ms"] - fl, 1.0)],
    ]
    s = results["scale"]
    fl_list = s["list_floor"]["median_ms"]
    fl500 = s["show500_floor"]["median_ms"]
    rows += [
        [f"`models list --json`, {args.models:,} models × {args.versions} versions", f"median of {args.list_runs}",
         ms(s["list"]["median_ms"]), ms(s["list"]["median_ms"] - fl_list), "< 100 ms",
         verdict(s["list"]["median_ms"], 100)],
        [f"`models show model-0500@production --json` ({total:,} versions)", f"median of {args.show_runs}",
         ms(s["show500"]["median_ms"]), ms(s["show500"]["median_ms"] - fl500), "net < 1 ms",
         verdict(s["show500"]["median_ms"] - fl500, 1.0)],
        [f"`registry verify` ({total:,} versions, shared blobs; peak RSS {s['verify']['maxrss_mib'] / 1024:.2f} GiB)",
         "1 run", ms(s["verify"]["wall_ms"]),
         ms(s["verify"]["wall_ms"] - fl500), "—", "—"],
        [f"`register` small package into the {total:,}-version registry", f"median of {s['register_small_at_scale']['n']}",
         ms(s["register_small_at_scale"]["median_ms"]), ms(s["register_small_at_scale"]["median_ms"] - fl), "—", "—"],
    ]
    header = ["figure", "runs", "wall", "net of start-up", "target", "result"]
    md = ["### Registry", "", table(header, rows), ""]

    detail = [
        ["start-up floor", results["resolve"]["floor"]],
        ["register, first call (fresh registries)", r["first_fresh_registries"]],
        ["register new package", r["distinct"]], ["register same package", r["same"]],
        ["show credit@production", results["resolve"]["show"]],
        ["list --json (20k)", s["list"]], ["show model-0500@production", s["show500"]],
        ["register small at scale", s["register_small_at_scale"]],
    ]
    md += ["Spread (wall ms), CPU time (user+sys, median ms) and peak RSS (largest run):", "",
           table(["figure", "min", "median", "p90", "max", "CPU median", "peak RSS MiB"],
                 [[n, f"{d['min_ms']:.2f}", f"{d['median_ms']:.2f}", f"{d['p90_ms']:.2f}", f"{d['max_ms']:.2f}",
                   f"{d['cpu_median_ms']:.2f}", f"{d['maxrss_mib_max']:.0f}"] for n, d in detail]), ""]
    f = results["scale_fill"]
    md += [f"Payload {r['payload_bytes']:,} bytes (`--hidden {args.hidden}`), manifest "
           f"{big[0]['files']['slipway.json']:,} bytes. `promote credit:{prod} --to production`: "
           f"{results['promote_ms']:.1f} ms. Bulk fill: {f['rows']['versions']:,} version rows in "
           f"{f['seconds']:.2f} s, registry.db {f['db_bytes'] / 1e6:.1f} MB; `models list --json` prints "
           f"{list_bytes / 1e3:.0f} kB. `registry verify`: {verify_out['versions']:,} versions, ok."]
    markdown = "\n".join(md)
    print(markdown)

    results["machine"] = machine()
    results["table"] = {"header": header, "rows": rows}
    path = write_results("registry", results, markdown)
    print(f"\nwrote {path.relative_to(REPO)} and {path.with_suffix('.md').relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
