"""Helpers shared by the bench drivers: running commands, medians, machine facts, tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SLIPWAY = REPO / "target" / "release" / "slipway"
WORK = REPO / "bench" / "work"
RESULTS = REPO / "bench" / "results"

# Environment that caps every BLAS / OpenMP pool at one thread.
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "BLIS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def run_json(cmd: list[str], env_extra: dict[str, str] | None = None) -> tuple[dict, float]:
    """Runs `cmd`, returns (the last JSON line of its stdout, the process's wall time in s)."""
    env = os.environ.copy()
    if env_extra:
        env.update(env_extra)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
        raise SystemExit(1)
    lines = [l for l in proc.stdout.splitlines() if l.strip().startswith("{")]
    if not lines:
        sys.stderr.write(f"no JSON on stdout: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
        raise SystemExit(1)
    return json.loads(lines[-1]), wall


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, cwd=REPO).stdout.strip()
    except OSError:
        return ""


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    status = _cmd(["git", "status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rustc": _cmd(["rustc", "--version"]),
        "git_commit": _cmd(["git", "rev-parse", "--short", "HEAD"]),
        "crates_dirty": bool(status),
        "slipway_version": _cmd([str(SLIPWAY), "--version"]),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def write_results(kind: str, payload: dict, markdown: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    date = time.strftime("%Y-%m-%d")
    path = RESULTS / f"{kind}-{date}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{kind}-{date}.md").write_text(markdown + "\n")
    return path
