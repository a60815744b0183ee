"""Makes one stratified train/test split of a CSV, keeping the original CSV format.

Rows are parsed with the csv module only to read the target; each row is written back with the
same dialect the data files use (comma, minimal RFC 4180 quoting, LF line endings), so the two
output files hold the original rows byte for byte (checked below).

    python bench/split_data.py --data data/german_credit.csv --target creditability \
        --out-prefix bench/work/german_credit --test-size 0.2 --seed 42
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

from sklearn.model_selection import train_test_split


def write_rows(path: str, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--out-prefix", required=True, help="writes PREFIX-train.csv and PREFIX-test.csv")
    ap.add_argument("--test-size", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    with open(args.data, newline="", encoding="utf-8") as f:
        original = f.read()
    reader = csv.reader(io.StringIO(original))
    header = next(reader)
    rows = list(reader)
    # The rewrite must reproduce the file exactly, or the split would change the CSV format.
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    if buf.getvalue() != original:
        print(f"{args.data}: rewriting with the csv module changes the bytes; refusing", file=sys.stderr)
        return 1

    t = header.index(args.target)
    y = [r[t] for r in rows]
    idx = list(range(len(rows)))
    train_idx, test_idx = train_test_split(
        idx, test_size=args.test_size, random_state=args.seed, stratify=y, shuffle=True
    )
    train_path = f"{args.out_prefix}-train.csv"
    test_path = f"{args.out_prefix}-test.csv"
    write_rows(train_path, header, [rows[i] for i in train_idx])
    write_rows(test_path, header, [rows[i] for i in test_idx])

    def counts(ix: list[int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in ix:
            out[y[i]] = out.get(y[i], 0) + 1
        return dict(sorted(out.items()))

    print(json.dumps({
        "data": args.data,
        "train": train_path,
        "test": test_path,
        "train_rows": len(train_idx),
        "test_rows": len(test_idx),
        "train_classes": counts(train_idx),
        "test_classes": counts(test_idx),
        "seed": args.seed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
