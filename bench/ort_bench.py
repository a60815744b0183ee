"""In-process compute floor: onnxruntime (one thread) and scikit-learn on the serving benchmark's models.

Usage: bench/.venv-serve/bin/python bench/ort_bench.py OUT_DIR [--seconds S]
(OUT_DIR as written by bench/serve_models.py). For each model in OUT_DIR/onnx/ it measures, on the
first rows of data/breast_cancer.csv as float32:
    ort_batch1_us               median time of one session.run on 1 row, in microseconds
    ort_batch256_us_per_row     median time of one session.run on 256 rows, divided by 256
    sklearn_batch256_us_per_row median time of predict_proba on 256 rows (the MLServer joblib), / 256
and prints one JSON object to stdout. The ONNX session uses intra_op_num_threads=1,
inter_op_num_threads=1 and sequential execution, for per-core comparisons; pin the process with
`taskset -c 1` as well. Set OMP/OPENBLAS threads to 1 for scikit-learn likewise (done below).
"""

import os

# One BLAS thread for scikit-learn / numpy, set before numpy is imported.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "data", "breast_cancer.csv")
MODELS = ("logistic", "mlp")


def rows(n):
    x = np.loadtxt(DATA, delimiter=",", skiprows=1, usecols=range(30), dtype=np.float64)
    return x[np.arange(n) % len(x)].astype(np.float32)


def median_us(fn, seconds):
    """Median wall time of fn() in microseconds: a short warm-up, then calls for about `seconds`
    in rounds of 20 timed one by one (at least 200 calls)."""
    for _ in range(50):
        fn()
    times, end = [], time.perf_counter() + seconds
    while len(times) < 200 or time.perf_counter() < end:
        for _ in range(20):
            t0 = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement")
    a = ap.parse_args()

    import joblib
    import onnxruntime as ort

    x1, x256 = rows(1), rows(256)
    result = {}
    for name in MODELS:
        onnx_path = os.path.join(a.out_dir, "onnx", f"{name}.onnx")
        joblib_path = os.path.join(a.out_dir, "mlserver", name, "model.joblib")
        for p in (onnx_path, joblib_path):
            if not os.path.exists(p):
                sys.exit(f"missing {p}: run bench/serve_models.py {a.out_dir} first")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        in_name = sess.get_inputs()[0].name
        pipe = joblib.load(joblib_path)
        # Same answers from both before timing anything.
        proba = sess.run(["probabilities"], {in_name: x256})[0]
        diff = float(np.abs(proba - pipe.predict_proba(x256)).max())
        if diff > 1e-4:
            sys.exit(f"{name}: onnxruntime and scikit-learn differ by {diff}")
        result[name] = {
            # Both outputs (label + probabilities), as a server would compute them.
            "ort_batch1_us": round(median_us(lambda: sess.run(None, {in_name: x1}), a.seconds), 3),
            "ort_batch256_us_per_row": round(median_us(lambda: sess.run(None, {in_name: x256}), a.seconds) / 256, 4),
            "sklearn_batch256_us_per_row": round(median_us(lambda: pipe.predict_proba(x256), a.seconds) / 256, 4),
        }
        print(f"{name}: {result[name]}", file=sys.stderr)
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}, scikit-learn {__import__('sklearn').__version__}",
          file=sys.stderr)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
