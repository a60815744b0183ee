"""Makes a large CSV by sampling the rows of a data file with replacement (fixed seed).

Rows are copied byte for byte (the bundled data files hold no multi-line fields), so the output
has the source's exact format, header included. The sampled source row numbers are saved next to
the output (`.idx.npy`), so scores of the big file can be checked against scores of the source.
A file that already exists with the same source, seed and row count is kept.

    python bench/make_predict_data.py --data data/german_credit.csv --rows 1000000 \
        --out bench/work/german_credit-1m.csv
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    src = Path(args.data).read_bytes()
    out = Path(args.out)
    meta_path = out.with_suffix(".meta.json")
    meta = {
        "source": args.data,
        "source_sha256": hashlib.sha256(src).hexdigest(),
        "rows": args.rows,
        "seed": args.seed,
    }
    if out.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        print(json.dumps({**meta, "out": str(out), "bytes": out.stat().st_size, "reused": True}))
        return 0

    text = src.decode("utf-8")
    if "\r" in text:
        print(f"{args.data}: CR line endings are not expected", file=sys.stderr)
        return 1
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header, rows = lines[0], lines[1:]
    if any(r.count('"') % 2 for r in rows):
        print(f"{args.data}: a quoted field spans lines; cannot copy rows as lines", file=sys.stderr)
        return 1
    idx = np.random.default_rng(args.seed).integers(0, len(rows), size=args.rows)
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        step = 100_000
        for start in range(0, args.rows, step):
            f.write("\n".join(rows[i] for i in idx[start:start + step]))
            f.write("\n")
    np.save(out.with_suffix(".idx.npy"), idx)
    meta_path.write_text(json.dumps(meta) + "\n")
    print(json.dumps({**meta, "out": str(out), "bytes": out.stat().st_size, "reused": False}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
