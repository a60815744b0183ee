"""Models, server folders and request bodies for the serving benchmark (Slipway vs MLServer / ORT).

Usage (in the bench/.venv-serve virtual environment, see serve_requirements.txt):
    bench/.venv-serve/bin/python bench/serve_models.py OUT_DIR                        # everything
    bench/.venv-serve/bin/python bench/serve_models.py OUT_DIR --parallel-workers 1   # settings.json only

Trains on data/breast_cancer.csv (30 features, target = last column) two scikit-learn pipelines,
`logistic` (StandardScaler + LogisticRegression) and `mlp` (StandardScaler + MLPClassifier 64-32), and
writes:
    OUT_DIR/mlserver/settings.json                 MLServer server settings (ports, parallel_workers)
    OUT_DIR/mlserver/NAME/model.joblib             the fitted pipeline
    OUT_DIR/mlserver/NAME/model-settings.json      mlserver_sklearn.SKLearnModel, predict_fn=predict_proba
    OUT_DIR/onnx/NAME.onnx                         skl2onnx export, input X FP32 [None, 30], no ZipMap
    OUT_DIR/bodies/mlserver_NAME_{1,256}.json      V2 JSON requests, input `input-0` FP32 [n, 30]
    OUT_DIR/bodies/onnx_{1,256}.json               V2 JSON requests, input `X` FP32 [n, 30]
    OUT_DIR/bodies/onnx_256.bin (+ .bin.hlen)      V2 binary tensor extension body (+ JSON header length)
    OUT_DIR/features.txt                           the 30 feature names, comma-separated

Rows in the bodies are the first n rows of the CSV (cycled when n > rows). Models are fitted on numpy
arrays (no feature names), so scikit-learn does not warn on every numpy request in MLServer.
"""

import argparse
import csv
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "data", "breast_cancer.csv")
N_FEATURES = 30
BATCHES = (1, 256)
MLSERVER_INPUT = "input-0"  # SKLearnModel decodes the single input whatever its name; this is MLServer's style
ONNX_INPUT = "X"


def write_settings(out, parallel_workers, http_port, grpc_port, metrics_port):
    """MLServer's server-wide settings.json (model folders sit beside it)."""
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": parallel_workers,
        # debug defaults to true in MLServer and turns on uvicorn's per-request access log: off, as in production.
        "debug": False,
    }
    os.makedirs(os.path.join(out, "mlserver"), exist_ok=True)
    path = os.path.join(out, "mlserver", "settings.json")
    with open(path, "w") as f:
        json.dump(settings, f, indent=2)
        f.write("\n")
    print(f"wrote {path} (parallel_workers={parallel_workers})", file=sys.stderr)


def load_data():
    with open(DATA, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if len(header) != N_FEATURES + 1:
        sys.exit(f"{DATA}: expected {N_FEATURES} features + target, header has {len(header)} columns")
    features, target = header[:N_FEATURES], header[-1]
    x = np.array([[float(v) for v in r[:N_FEATURES]] for r in body], dtype=np.float64)
    y = np.array([r[-1] for r in body])
    if len(set(y)) != 2:
        sys.exit(f"{DATA}: target {target!r} should be binary, got classes {sorted(set(y))}")
    return features, x, y


def make_models():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic": Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000))]),
        "mlp": Pipeline([("scale", StandardScaler()),
                         ("model", MLPClassifier(hidden_layer_sizes=(64, 32), random_state=0, max_iter=500))]),
    }


def to_onnx(pipe, path):
    from skl2onnx import to_onnx as skl_to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = skl_to_onnx(pipe, initial_types=[(ONNX_INPUT, FloatTensorType([None, N_FEATURES]))],
                      options={id(pipe): {"zipmap": False}}, target_opset=None)
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    return onx


def v2_json(name, rows):
    """A V2 (Open Inference Protocol) JSON request: one FP32 tensor, data flat in row-major order."""
    return {"inputs": [{"name": name, "datatype": "FP32", "shape": list(rows.shape),
                        "data": [float(v) for v in rows.ravel()]}]}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def first_rows(x, n):
    return x[np.arange(n) % len(x)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--parallel-workers", type=int, default=None,
                    help="only rewrite OUT_DIR/mlserver/settings.json with this parallel_workers")
    ap.add_argument("--http-port", type=int, default=int(os.environ.get("MLSERVER_HTTP_PORT", 18080)))
    ap.add_argument("--grpc-port", type=int, default=int(os.environ.get("MLSERVER_GRPC_PORT", 18081)))
    ap.add_argument("--metrics-port", type=int, default=int(os.environ.get("MLSERVER_METRICS_PORT", 18082)))
    a = ap.parse_args()
    out = a.out_dir

    if a.parallel_workers is not None:  # settings only; the models are left as they are
        write_settings(out, a.parallel_workers, a.http_port, a.grpc_port, a.metrics_port)
        return
    write_settings(out, 0, a.http_port, a.grpc_port, a.metrics_port)

    import joblib
    import onnxruntime as ort

    features, x, y = load_data()
    for d in ("onnx", "bodies"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    with open(os.path.join(out, "features.txt"), "w") as f:
        f.write(",".join(features) + "\n")

    x32 = x.astype(np.float32)
    for name, pipe in make_models().items():
        pipe.fit(x, y)
        # MLServer folder: joblib + model-settings.json. Without `outputs` in the request, SKLearnModel
        # calls parameters.extra.predict_fn (here predict_proba: FP64 [n, 2]); without it, predict.
        mdir = os.path.join(out, "mlserver", name)
        os.makedirs(mdir, exist_ok=True)
        joblib.dump(pipe, os.path.join(mdir, "model.joblib"))
        write_json(os.path.join(mdir, "model-settings.json"), {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1", "extra": {"predict_fn": "predict_proba"}},
        })

        # ONNX export, checked against scikit-learn on the whole data set.
        onnx_path = os.path.join(out, "onnx", f"{name}.onnx")
        to_onnx(pipe, onnx_path)
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        inputs = [(i.name, i.type, i.shape) for i in sess.get_inputs()]
        if inputs != [(ONNX_INPUT, "tensor(float)", [None, N_FEATURES])]:
            sys.exit(f"{onnx_path}: unexpected inputs {inputs}")
        got = sess.run(None, {ONNX_INPUT: x32})
        proba = got[[o.name for o in sess.get_outputs()].index("probabilities")]
        diff = float(np.abs(proba - pipe.predict_proba(x32)).max())
        if diff > 1e-4:
            sys.exit(f"{onnx_path}: ONNX and scikit-learn probabilities differ by {diff}")
        print(f"{name}: train accuracy {pipe.score(x, y):.4f}, onnx outputs "
              f"{[(o.name, o.type) for o in sess.get_outputs()]}, max |onnx - sklearn| {diff:.2e}", file=sys.stderr)

        for n in BATCHES:
            write_json(os.path.join(out, "bodies", f"mlserver_{name}_{n}.json"), v2_json(MLSERVER_INPUT, first_rows(x, n)))

    # Bodies for an OIP v2 server serving the ONNX files (same for both models: the input is the same).
    for n in BATCHES:
        write_json(os.path.join(out, "bodies", f"onnx_{n}.json"), v2_json(ONNX_INPUT, first_rows(x, n)))

    # Binary tensor extension: JSON header, then the raw little-endian f32 tensor; Inference-Header-Content-Length
    # must carry the header length, kept in the .hlen file.
    rows = first_rows(x, 256).astype("<f4")
    header = {"inputs": [{"name": ONNX_INPUT, "datatype": "FP32", "shape": list(rows.shape),
                          "parameters": {"binary_data_size": rows.nbytes}}],
              "parameters": {"binary_data_output": True}}
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    assert rows.nbytes == 256 * N_FEATURES * 4
    bin_path = os.path.join(out, "bodies", "onnx_256.bin")
    with open(bin_path, "wb") as f:
        f.write(hbytes + rows.tobytes())
    with open(bin_path + ".hlen", "w") as f:
        f.write(str(len(hbytes)))  # decimal, no newline
    print(f"wrote models and bodies under {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
