"""Makes the runtime conformance fixtures: small models trained with scikit-learn, XGBoost and
LightGBM (exported to ONNX with skl2onnx and onnxmltools), graphs written by hand with
`onnx.helper` (a PyTorch-style network, and one graph per `ai.onnx.ml` operator and attribute form),
their inputs, and what onnxruntime answers for them.

    python3 -m venv conformance/.venv
    conformance/.venv/bin/pip install -r conformance/requirements.txt
    conformance/.venv/bin/python conformance/make.py

Writes `conformance/cases/<case>.onnx` and `<case>.json`. The Rust suite
(`crates/slipway-runtime/tests/conformance.rs`) runs every case and compares: floating outputs
within 1e-5 relative, labels exact. A ZipMap output (a list of {class: probability}) is written
as a [rows, classes] matrix in the ZipMap's class order, which is how Slipway exposes it.
"""

import csv
import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(HERE, "cases")
ROWS = 24  # rows per fixture: enough to cover every branch, small enough to commit
SEED = 7


def read_csv(name):
    with open(os.path.join(DATA, name), newline="") as f:
        rows = list(csv.DictReader(f))
    return rows


def numeric_matrix(rows, columns):
    out = np.full((len(rows), len(columns)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(columns):
            v = r[c]
            if v not in ("", "NA"):
                out[i, j] = float(v)
    return out


def breast_cancer():
    rows = read_csv("breast_cancer.csv")
    cols = [c for c in rows[0].keys() if c != "diagnosis"]
    return numeric_matrix(rows, cols).astype(np.float32), np.array([r["diagnosis"] for r in rows])


def penguins():
    rows = [r for r in read_csv("penguins.csv")]
    cols = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    return numeric_matrix(rows, cols).astype(np.float32), np.array([r["species"] for r in rows])


def auto_mpg():
    rows = [r for r in read_csv("auto_mpg.csv") if r["Miles_per_Gallon"] not in ("", "NA")]
    cols = ["Cylinders", "Displacement", "Horsepower", "Weight_in_lbs", "Acceleration", "Year"]
    x = numeric_matrix(rows, cols).astype(np.float32)
    return x, np.array([float(r["Miles_per_Gallon"]) for r in rows], dtype=np.float32)


OIP = {
    np.dtype("float32"): "FP32",
    np.dtype("float64"): "FP64",
    np.dtype("int64"): "INT64",
    np.dtype("int32"): "INT32",
    np.dtype("bool"): "BOOL",
}


def tensor_json(name, value):
    value = np.asarray(value)
    if value.dtype.kind in ("U", "O", "S"):
        return {"name": name, "datatype": "BYTES", "shape": list(value.shape),
                "data": [str(v) for v in value.reshape(-1)]}
    dt = OIP[value.dtype]
    data = value.reshape(-1).tolist()
    if value.dtype.kind == "f":
        data = [None if not np.isfinite(v) else float(v) for v in data]
    return {"name": name, "datatype": dt, "shape": list(value.shape), "data": data}


def run_case(case, model, feeds, notes, rtol=1e-5, reference=False):
    """Saves the model, runs it in onnxruntime, writes the fixture."""
    os.makedirs(OUT, exist_ok=True)
    if not isinstance(model, bytes):
        model = model.SerializeToString()
    path = os.path.join(OUT, case + ".onnx")
    with open(path, "wb") as f:
        f.write(model)
    if reference:
        from onnx.reference import ReferenceEvaluator
        ref = ReferenceEvaluator(model)
        names = list(ref.output_names)
        results = ref.run(None, feeds)
    else:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        results = sess.run(None, feeds)
    outputs = []
    for name, value in zip(names, results):
        if isinstance(value, list) and value and isinstance(value[0], dict):
            classes = list(value[0].keys())
            matrix = np.array([[row[c] for c in classes] for row in value], dtype=np.float32)
            t = tensor_json(name, matrix)
            t["zipmap_classes"] = [str(c) for c in classes]
            outputs.append(t)
        else:
            outputs.append(tensor_json(name, value))
    fixture = {
        "case": case,
        "notes": notes,
        "rtol": rtol,
        "inputs": [tensor_json(k, v) for k, v in feeds.items()],
        "outputs": outputs,
        "expected_by": "onnx.reference " + onnx.__version__ if reference else "onnxruntime " + ort.__version__,
    }
    with open(os.path.join(OUT, case + ".json"), "w") as f:
        json.dump(fixture, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"{case:32s} {len(model):>8d} bytes  outputs {', '.join(names)}")


def sample(x, rows=ROWS, missing=False):
    rng = np.random.default_rng(SEED)
    idx = rng.choice(len(x), size=rows, replace=False)
    out = x[idx].copy()
    if missing:
        # A few missing values, so imputers and trees' missing-value branches are exercised.
        out[1, 0] = np.nan
        out[3, 2] = np.nan
    return out


def sklearn_cases():
    from skl2onnx import to_onnx
    from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    bx, by = breast_cancer()
    px, py = penguins()
    keep = ~np.isnan(px).any(axis=1)
    px, py = px[keep], py[keep]
    ax, ay = auto_mpg()
    ax_filled = np.where(np.isnan(ax), np.nanmedian(ax, axis=0), ax)

    def export(model, x, zipmap=True, target_opset=None):
        options = None if zipmap else {id(model): {"zipmap": False}}
        kwargs = {"options": options}
        if target_opset:
            kwargs["target_opset"] = target_opset
        return to_onnx(model, x[:1], **kwargs)

    m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(bx, by)
    run_case("sk_logistic_scaler_zipmap", export(m, bx), {"X": sample(bx)},
             "scikit-learn StandardScaler + LogisticRegression, string labels, ZipMap")

    m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(px, py)
    run_case("sk_logistic_multiclass", export(m, px, zipmap=False), {"X": sample(px)},
             "3-class LogisticRegression on penguins, string labels, no ZipMap")

    yi = (by == "malignant").astype(np.int64)
    m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(bx, yi)
    run_case("sk_logistic_int_labels", export(m, bx), {"X": sample(bx)},
             "LogisticRegression with integer labels, ZipMap with int64 keys")

    m = make_pipeline(StandardScaler(), MLPClassifier((16, 8), max_iter=300, random_state=0)).fit(bx, by)
    run_case("sk_mlp_binary", export(m, bx, zipmap=False), {"X": sample(bx)},
             "MLPClassifier 16x8 relu with StandardScaler, string labels")

    m = make_pipeline(StandardScaler(), MLPClassifier((8,), activation="tanh", max_iter=500,
                                                      random_state=0)).fit(px, py)
    run_case("sk_mlp_multiclass", export(m, px, zipmap=False), {"X": sample(px)},
             "MLPClassifier tanh, 3 classes, softmax")

    m = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(bx, by)
    run_case("sk_random_forest", export(m, bx, zipmap=False), {"X": sample(bx)},
             "RandomForestClassifier 8 trees depth 4: TreeEnsembleClassifier, AVERAGE")

    m = RandomForestClassifier(n_estimators=6, max_depth=5, random_state=0).fit(px, py)
    run_case("sk_random_forest_multiclass", export(m, px), {"X": sample(px)},
             "RandomForestClassifier, 3 string classes, ZipMap")

    m = GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(bx, by)
    run_case("sk_gradient_boosting", export(m, bx, zipmap=False), {"X": sample(bx)},
             "GradientBoostingClassifier binary: two base_values, LOGISTIC")

    m = GradientBoostingClassifier(n_estimators=6, max_depth=2, random_state=0).fit(px, py)
    run_case("sk_gradient_boosting_multiclass", export(m, px, zipmap=False), {"X": sample(px)},
             "GradientBoostingClassifier 3 classes: SOFTMAX")

    m = RandomForestRegressor(n_estimators=6, max_depth=4, random_state=0).fit(ax_filled, ay)
    run_case("sk_random_forest_regressor", export(m, ax_filled), {"X": sample(ax_filled)},
             "RandomForestRegressor: TreeEnsembleRegressor AVERAGE")

    m = GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0).fit(ax_filled, ay)
    run_case("sk_gradient_boosting_regressor", export(m, ax_filled), {"X": sample(ax_filled)},
             "GradientBoostingRegressor: TreeEnsembleRegressor SUM with base value")

    m = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LinearRegression()).fit(ax, ay)
    run_case("sk_linear_regression_imputer", export(m, ax), {"X": sample(ax, missing=True)},
             "SimpleImputer + StandardScaler + LinearRegression: Imputer, Scaler, LinearRegressor")

    m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(bx.astype(np.float64), by)
    run_case("sk_logistic_double", to_onnx(m, bx[:1].astype(np.float64), options={id(m): {"zipmap": False}}),
             {"X": sample(bx).astype(np.float64)},
             "LogisticRegression exported for float64 inputs")

    m = SVC(probability=False).fit(bx[:100], by[:100])
    model = export(m, bx)
    with open(os.path.join(OUT, "unsupported_svm.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    print("unsupported_svm.onnx (SVMClassifier: expected to be refused at load)")


def boosting_cases():
    import lightgbm
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    bx, by = breast_cancer()
    yb = (by == "malignant").astype(np.int64)
    px, py = penguins()
    keep = ~np.isnan(px).any(axis=1)
    px, py = px[keep], py[keep]
    yp = np.unique(py, return_inverse=True)[1]
    ax, ay = auto_mpg()
    types = lambda x: [("X", FloatTensorType([None, x.shape[1]]))]

    m = xgboost.XGBClassifier(n_estimators=10, max_depth=3, random_state=0).fit(bx, yb)
    run_case("xgboost_binary", onnxmltools.convert_xgboost(m, initial_types=types(bx), target_opset=15),
             {"X": sample(bx, missing=True)}, "XGBoost binary via onnxmltools, missing values")

    m = xgboost.XGBClassifier(n_estimators=5, max_depth=3, random_state=0).fit(px, yp)
    run_case("xgboost_multiclass", onnxmltools.convert_xgboost(m, initial_types=types(px), target_opset=15),
             {"X": sample(px)}, "XGBoost 3 classes: SOFTMAX over per-class trees")

    m = xgboost.XGBRegressor(n_estimators=10, max_depth=3, random_state=0).fit(ax, ay)
    run_case("xgboost_regressor", onnxmltools.convert_xgboost(m, initial_types=types(ax), target_opset=15),
             {"X": sample(ax, missing=True)}, "XGBoost regressor, missing values")

    m = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=8, random_state=0, verbose=-1).fit(bx, yb)
    run_case("lightgbm_binary", onnxmltools.convert_lightgbm(m, initial_types=types(bx), target_opset=15,
                                                             zipmap=False),
             {"X": sample(bx, missing=True)}, "LightGBM binary via onnxmltools")

    m = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=6, random_state=0, verbose=-1).fit(px, yp)
    run_case("lightgbm_multiclass", onnxmltools.convert_lightgbm(m, initial_types=types(px), target_opset=15,
                                                                 zipmap=False),
             {"X": sample(px)}, "LightGBM 3 classes")

    m = lightgbm.LGBMRegressor(n_estimators=10, num_leaves=8, random_state=0, verbose=-1).fit(ax, ay)
    run_case("lightgbm_regressor", onnxmltools.convert_lightgbm(m, initial_types=types(ax), target_opset=15),
             {"X": sample(ax, missing=True)}, "LightGBM regressor")


def ml(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, domain="ai.onnx.ml", **attrs)


def graph_model(nodes, inputs, outputs, ml_opset=3, opset=15, initializers=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset),
                                            helper.make_opsetid("ai.onnx.ml", ml_opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def handmade_cases():
    rng = np.random.default_rng(SEED)
    F = TensorProto.FLOAT

    # A PyTorch-style network: Gemm + Relu + Gemm + Softmax, weights as initializers, batch "N".
    w1 = rng.normal(size=(6, 5)).astype(np.float32)
    b1 = rng.normal(size=5).astype(np.float32)
    w2 = rng.normal(size=(5, 3)).astype(np.float32)
    b2 = rng.normal(size=3).astype(np.float32)
    inits = [helper.make_tensor(n, F, a.shape, a.reshape(-1)) for n, a in
             [("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)]]
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    x = rng.normal(size=(ROWS, 6)).astype(np.float32)
    run_case("torch_style_mlp", graph_model(nodes, [vi("input", F, ["N", 6])],
                                            [vi("probabilities", F, ["N", 3])], initializers=inits),
             {"input": x}, "Gemm/Relu/Gemm/Softmax network with a named batch dimension")

    # The same network with the batch dimension left unnamed (no dim_param, no dim_value).
    m = graph_model(nodes, [vi("input", F, [None, 6])], [vi("probabilities", F, [None, 3])],
                    initializers=inits)
    run_case("torch_style_mlp_unnamed_batch", m, {"input": x},
             "the same network with an unnamed batch dimension")

    # The same network exported with a fixed batch of 1, as torch.onnx.export writes it without
    # dynamic_axes: `import --input-shape input=-1,6` makes the batch variable.
    m = graph_model(nodes, [vi("input", F, [1, 6])], [vi("probabilities", F, [1, 3])], initializers=inits)
    run_case("torch_style_mlp_batch1", m, {"input": x[:1]},
             "the same network exported with a fixed batch of 1")

    # A graph that does not type-check: a 6-column input times a 5-row weight matrix. Slipway
    # must refuse it at load, naming the node.
    bad_w = helper.make_tensor("w", F, [5, 3], rng.normal(size=15).astype(np.float32))
    bad = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["y"], name="dense_1")], "g",
                            [vi("input", F, ["N", 6])], [vi("y", F, ["N", 3])], initializer=[bad_w])
    bad = helper.make_model(bad, opset_imports=[helper.make_opsetid("", 15)])
    with open(os.path.join(OUT, "broken_shapes.onnx"), "wb") as f:
        f.write(bad.SerializeToString())
    print("broken_shapes.onnx (MatMul 6 × 5: expected to be refused at load)")

    x4 = rng.normal(size=(ROWS, 4)).astype(np.float32) * 3

    # Normalizer, all three norms.
    for norm in ["MAX", "L1", "L2"]:
        run_case(f"op_normalizer_{norm.lower()}",
                 graph_model([ml("Normalizer", ["x"], ["y"], norm=norm)],
                             [vi("x", F, ["N", 4])], [vi("y", F, ["N", 4])]),
                 {"x": x4}, f"Normalizer norm={norm}")

    run_case("op_binarizer", graph_model([ml("Binarizer", ["x"], ["y"], threshold=0.5)],
                                         [vi("x", F, ["N", 4])], [vi("y", F, ["N", 4])]),
             {"x": x4}, "Binarizer threshold 0.5")

    xi = x4.copy()
    xi[xi > 2.0] = np.nan
    xi[0, 1] = -1.0
    run_case("op_imputer", graph_model([ml("Imputer", ["x"], ["y"], imputed_value_floats=[1.0, 2.0, 3.0, 4.0],
                                           replaced_value_float=-1.0)],
                                       [vi("x", F, ["N", 4])], [vi("y", F, ["N", 4])]),
             {"x": xi}, "Imputer replacing -1 per column (NaN stays NaN)")
    run_case("op_imputer_nan", graph_model([ml("Imputer", ["x"], ["y"], imputed_value_floats=[9.5],
                                               replaced_value_float=float("nan"))],
                                           [vi("x", F, ["N", 4])], [vi("y", F, ["N", 4])]),
             {"x": xi}, "Imputer replacing NaN with one value for every column")

    run_case("op_scaler", graph_model([ml("Scaler", ["x"], ["y"], offset=[1, -1, 0.5, 0], scale=[2, 0.5, 1, 3])],
                                      [vi("x", F, ["N", 4])], [vi("y", F, ["N", 4])]),
             {"x": x4}, "Scaler")

    # LinearClassifier: every post transform, int and string labels, the one-score binary form.
    coef = rng.normal(size=12).astype(np.float32).tolist()
    for post in ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]:
        xin = x4 if post != "PROBIT" else (np.abs(x4) / 10 + 0.01).astype(np.float32)
        co = coef if post != "PROBIT" else [abs(c) / 20 for c in coef]
        run_case(f"op_linear_classifier_{post.lower()}",
                 graph_model([ml("LinearClassifier", ["x"], ["label", "scores"], coefficients=co,
                                 intercepts=[0.1, -0.2, 0.05], classlabels_strings=["a", "b", "c"],
                                 post_transform=post)],
                             [vi("x", F, ["N", 4])],
                             [vi("label", TensorProto.STRING, ["N"]), vi("scores", F, ["N", 3])]),
                 {"x": xin}, f"LinearClassifier 3 string classes, post_transform={post}")
    run_case("op_linear_classifier_binary_one_score",
             graph_model([ml("LinearClassifier", ["x"], ["label", "scores"], coefficients=coef[:4],
                             intercepts=[0.3], classlabels_ints=[0, 1], post_transform="LOGISTIC")],
                         [vi("x", F, ["N", 4])],
                         [vi("label", TensorProto.INT64, ["N"]), vi("scores", F, ["N", 2])]),
             {"x": x4}, "LinearClassifier binary with one coefficient row: two scores")
    run_case("op_linear_regressor",
             graph_model([ml("LinearRegressor", ["x"], ["y"], coefficients=coef[:8], intercepts=[1.0, -1.0],
                             targets=2, post_transform="NONE")],
                         [vi("x", F, ["N", 4])], [vi("y", F, ["N", 2])]),
             {"x": x4}, "LinearRegressor with two targets")

    # Trees by hand: every aggregate function and post transform, in the opset 1 and opset 3 forms.
    def tree_attrs(kind, as_tensor=False):
        # two trees over 4 features; modes cover every comparison
        a = dict(
            nodes_treeids=[0, 0, 0, 0, 0, 1, 1, 1],
            nodes_nodeids=[0, 1, 2, 3, 4, 0, 1, 2],
            nodes_featureids=[0, 1, 0, 0, 0, 2, 0, 0],
            nodes_values=[0.0, -0.5, 0, 0, 0, 1.0, 0, 0],
            nodes_modes=["BRANCH_LEQ", "BRANCH_GT", "LEAF", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "LEAF"],
            nodes_truenodeids=[1, 3, 0, 0, 0, 1, 0, 0],
            nodes_falsenodeids=[2, 4, 0, 0, 0, 2, 0, 0],
            nodes_missing_value_tracks_true=[1, 0, 0, 0, 0, 0, 0, 0],
        )
        ids = [0, 0, 1, 1, 0, 1, 0, 1]
        trees = [0, 0, 0, 0, 1, 1, 1, 1]
        nodes = [2, 2, 3, 3, 1, 1, 2, 2]
        w = [0.5, 0.1, 0.2, 0.9, 0.3, 0.4, 0.6, 0.05]
        # Each leaf gives a weight to both targets / classes.
        leaf = {"ids": ids, "treeids": trees, "nodeids": nodes, "weights": w}
        if kind == "classifier":
            # leaf 4 (tree 0) gets weights too
            leaf = {"ids": ids + [0, 1], "treeids": trees + [0, 0], "nodeids": nodes + [4, 4],
                    "weights": w + [0.7, 0.15]}
            a.update(class_ids=leaf["ids"], class_treeids=leaf["treeids"], class_nodeids=leaf["nodeids"])
            if as_tensor:
                a["class_weights_as_tensor"] = helper.make_tensor("w", TensorProto.DOUBLE, [len(leaf["weights"])],
                                                                  leaf["weights"])
            else:
                a["class_weights"] = leaf["weights"]
        else:
            leaf = {"ids": ids + [0, 1], "treeids": trees + [0, 0], "nodeids": nodes + [4, 4],
                    "weights": w + [0.7, 0.15]}
            a.update(target_ids=leaf["ids"], target_treeids=leaf["treeids"], target_nodeids=leaf["nodeids"])
            if as_tensor:
                a["target_weights_as_tensor"] = helper.make_tensor("w", TensorProto.DOUBLE,
                                                                   [len(leaf["weights"])], leaf["weights"])
            else:
                a["target_weights"] = leaf["weights"]
        if as_tensor:
            vals = a.pop("nodes_values")
            a["nodes_values_as_tensor"] = helper.make_tensor("v", TensorProto.DOUBLE, [len(vals)], vals)
        return a

    xt = x4.copy()
    xt[2, 0] = np.nan
    xt[5, 2] = np.nan
    for agg in ["SUM", "AVERAGE", "MIN", "MAX"]:
        for post in ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO"]:
            a = tree_attrs("regressor")
            run_case(f"op_tree_regressor_{agg.lower()}_{post.lower()}",
                     graph_model([ml("TreeEnsembleRegressor", ["x"], ["y"], n_targets=2, aggregate_function=agg,
                                     post_transform=post, base_values=[0.25, -0.5], **a)],
                                 [vi("x", F, ["N", 4])], [vi("y", F, ["N", 2])], ml_opset=1),
                     {"x": xt}, f"TreeEnsembleRegressor aggregate={agg} post_transform={post}, opset 1")
    a = tree_attrs("regressor", as_tensor=True)
    run_case("op_tree_regressor_opset3_tensors",
             graph_model([ml("TreeEnsembleRegressor", ["x"], ["y"], n_targets=2, aggregate_function="SUM",
                             base_values_as_tensor=helper.make_tensor("b", TensorProto.DOUBLE, [2], [0.5, 0.25]),
                             **a)],
                         [vi("x", TensorProto.DOUBLE, ["N", 4])], [vi("y", F, ["N", 2])], ml_opset=3),
             {"x": xt.astype(np.float64)}, "TreeEnsembleRegressor, opset 3 *_as_tensor attributes, double input")
    for post in ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"]:
        a = tree_attrs("classifier")
        if post == "PROBIT":
            a["class_weights"] = [w / 4 + 0.01 for w in a["class_weights"]]
        run_case(f"op_tree_classifier_{post.lower()}",
                 graph_model([ml("TreeEnsembleClassifier", ["x"], ["label", "scores"],
                                 classlabels_strings=["no", "yes"], post_transform=post, **a)],
                             [vi("x", F, ["N", 4])],
                             [vi("label", TensorProto.STRING, ["N"]), vi("scores", F, ["N", 2])], ml_opset=1),
                 {"x": xt}, f"TreeEnsembleClassifier two string classes, post_transform={post}")
    a = tree_attrs("classifier", as_tensor=True)
    run_case("op_tree_classifier_opset3_tensors",
             graph_model([ml("TreeEnsembleClassifier", ["x"], ["label", "scores"], classlabels_int64s=[0, 1],
                             base_values_as_tensor=helper.make_tensor("b", TensorProto.DOUBLE, [2], [0.1, -0.1]),
                             **a)],
                         [vi("x", TensorProto.DOUBLE, ["N", 4])],
                         [vi("label", TensorProto.INT64, ["N"]), vi("scores", F, ["N", 2])], ml_opset=3),
             {"x": xt.astype(np.float64)}, "TreeEnsembleClassifier int64 labels, *_as_tensor attributes, double input")
    # One class id only (binary with a single score column), as scikit-learn's binary GBDT writes it.
    a = tree_attrs("classifier")
    keep = [i for i, c in enumerate(a["class_ids"]) if c == 1]
    for k in ["class_ids", "class_treeids", "class_nodeids", "class_weights"]:
        a[k] = [a[k][i] for i in keep]
    a["class_ids"] = [0] * len(keep)
    run_case("op_tree_classifier_binary_one_score",
             graph_model([ml("TreeEnsembleClassifier", ["x"], ["label", "scores"], classlabels_int64s=[0, 1],
                             post_transform="LOGISTIC", base_values=[0.2], **a)],
                         [vi("x", F, ["N", 4])],
                         [vi("label", TensorProto.INT64, ["N"]), vi("scores", F, ["N", 2])], ml_opset=1),
             {"x": xt}, "binary TreeEnsembleClassifier with one score column and one base value")

    # ml opset 5: the unified TreeEnsemble operator.
    te = dict(
        nodes_featureids=[0, 1, 2],
        nodes_splits=helper.make_tensor("s", TensorProto.FLOAT, [3], [0.0, -0.5, 1.0]),
        nodes_modes=helper.make_tensor("m", TensorProto.UINT8, [3], [0, 3, 1]),  # LEQ, GT, LT
        nodes_truenodeids=[1, 0, 1],
        nodes_trueleafs=[0, 1, 1],
        nodes_falsenodeids=[2, 1, 2],
        nodes_falseleafs=[1, 1, 1],
        nodes_missing_value_tracks_true=[1, 0, 0],
        tree_roots=[0, 2],
        leaf_targetids=[0, 1, 0, 1, 0],
        leaf_weights=helper.make_tensor("lw", TensorProto.FLOAT, [5], [0.5, 0.1, 0.9, 0.3, 0.4]),
        n_targets=2,
    )
    for agg, name in [(0, "average"), (1, "sum"), (2, "min"), (3, "max")]:
        run_case(f"op_tree_ensemble_opset5_{name}",
                 graph_model([ml("TreeEnsemble", ["x"], ["y"], aggregate_function=agg, post_transform=0, **te)],
                             [vi("x", F, ["N", 4])], [vi("y", F, ["N", 2])], ml_opset=5, opset=21),
                 {"x": xt}, f"TreeEnsemble (ml opset 5) aggregate {name}")
    te_member = dict(te)
    te_member["nodes_modes"] = helper.make_tensor("m", TensorProto.UINT8, [3], [0, 6, 1])  # LEQ, MEMBER, LT
    te_member["membership_values"] = helper.make_tensor(
        "mv", TensorProto.FLOAT, [4], [1.0, 2.0, float("nan"), float("nan")])
    xm = xt.copy()
    xm[::3, 1] = 2.0
    run_case("op_tree_ensemble_opset5_member",
             graph_model([ml("TreeEnsemble", ["x"], ["y"], aggregate_function=1, post_transform=0, **te_member)],
                         [vi("x", F, ["N", 4])], [vi("y", F, ["N", 2])], ml_opset=5, opset=21),
             {"x": xm}, "TreeEnsemble set membership (BRANCH_MEMBER)")
    # onnxruntime 1.32 reads TreeEnsemble's post_transform codes 1 and 2 the other way round from
    # the specification (1 = SOFTMAX, 2 = LOGISTIC), and the ONNX reference implementation
    # ignores post_transform: no fixture for those two; Slipway follows the specification.

    # ArrayFeatureExtractor, OneHotEncoder, LabelEncoder, CategoryMapper, FeatureVectorizer, ZipMap.
    idx = helper.make_tensor("idx", TensorProto.INT64, [2], [3, 1])
    run_case("op_array_feature_extractor",
             graph_model([ml("ArrayFeatureExtractor", ["x", "idx"], ["y"])], [vi("x", F, ["N", 4])],
                         [vi("y", F, ["N", 2])], initializers=[idx]),
             {"x": x4}, "ArrayFeatureExtractor columns 3 and 1")
    S = TensorProto.STRING
    words = np.array([["red"], ["green"], ["blue"], ["mauve"], ["green"], ["red"]])
    run_case("op_one_hot_encoder_strings",
             graph_model([ml("OneHotEncoder", ["x"], ["y"], cats_strings=["red", "green", "blue"], zeros=1)],
                         [vi("x", S, ["N", 1])], [vi("y", F, ["N", 1, 3])]),
             {"x": words}, "OneHotEncoder over strings, unknown category gives zeros")
    ints = np.array([[4], [1], [9], [4]], dtype=np.int64)
    run_case("op_one_hot_encoder_ints",
             graph_model([ml("OneHotEncoder", ["x"], ["y"], cats_int64s=[1, 4, 9], zeros=1)],
                         [vi("x", TensorProto.INT64, ["N", 1])], [vi("y", F, ["N", 1, 3])]),
             {"x": ints}, "OneHotEncoder over int64")
    flat = words.reshape(-1)
    run_case("op_label_encoder_string_to_int",
             graph_model([ml("LabelEncoder", ["x"], ["y"], keys_strings=["red", "green", "blue"],
                             values_int64s=[0, 1, 2], default_int64=-1)],
                         [vi("x", S, ["N"])], [vi("y", TensorProto.INT64, ["N"])], ml_opset=2),
             {"x": flat}, "LabelEncoder string → int64 (ml opset 2)")
    run_case("op_label_encoder_int_to_string",
             graph_model([ml("LabelEncoder", ["x"], ["y"], keys_int64s=[1, 4, 9],
                             values_strings=["one", "four", "nine"], default_string="?")],
                         [vi("x", TensorProto.INT64, ["N"])], [vi("y", S, ["N"])], ml_opset=2),
             {"x": ints.reshape(-1)}, "LabelEncoder int64 → string")
    run_case("op_label_encoder_float_to_float",
             graph_model([ml("LabelEncoder", ["x"], ["y"], keys_floats=[0.5, 1.5],
                             values_floats=[10.0, 20.0], default_float=-1.0)],
                         [vi("x", F, ["N"])], [vi("y", F, ["N"])], ml_opset=2),
             {"x": np.array([0.5, 1.5, 2.5, 0.5], dtype=np.float32)}, "LabelEncoder float → float")
    run_case("op_label_encoder_opset4_tensors",
             graph_model([ml("LabelEncoder", ["x"], ["y"],
                             keys_tensor=helper.make_tensor("k", TensorProto.INT64, [3], [1, 4, 9]),
                             values_tensor=helper.make_tensor("v", TensorProto.INT64, [3], [10, 40, 90]),
                             default_tensor=helper.make_tensor("d", TensorProto.INT64, [1], [-7]))],
                         [vi("x", TensorProto.INT64, ["N"])], [vi("y", TensorProto.INT64, ["N"])],
                         ml_opset=4, opset=21),
             {"x": np.array([1, 4, 9, 5], dtype=np.int64)}, "LabelEncoder with ml opset 4 tensor attributes")
    run_case("op_category_mapper_to_int",
             graph_model([ml("CategoryMapper", ["x"], ["y"], cats_strings=["red", "green", "blue"],
                             cats_int64s=[10, 20, 30], default_int64=-5)],
                         [vi("x", S, ["N"])], [vi("y", TensorProto.INT64, ["N"])]),
             {"x": flat}, "CategoryMapper string → int64")
    run_case("op_category_mapper_to_string",
             graph_model([ml("CategoryMapper", ["x"], ["y"], cats_strings=["red", "green", "blue"],
                             cats_int64s=[10, 20, 30], default_string="none")],
                         [vi("x", TensorProto.INT64, ["N"])], [vi("y", S, ["N"])]),
             {"x": np.array([10, 30, 99, 20], dtype=np.int64)}, "CategoryMapper int64 → string")
    run_case("op_feature_vectorizer",
             graph_model([ml("FeatureVectorizer", ["a", "b"], ["y"], inputdimensions=[2, 3])],
                         [vi("a", TensorProto.INT64, ["N", 2]), vi("b", TensorProto.INT64, ["N", 3])], [vi("y", F, ["N", 5])]),
             {"a": rng.integers(0, 9, size=(ROWS, 2)).astype(np.int64), "b": rng.integers(0, 9, size=(ROWS, 3)).astype(np.int64)},
             "FeatureVectorizer joining two int64 inputs into floats")
    probs = rng.dirichlet([1, 1, 1], size=ROWS).astype(np.float32)
    run_case("op_zipmap_strings",
             graph_model([ml("ZipMap", ["x"], ["y"], classlabels_strings=["a", "b", "c"])], [vi("x", F, ["N", 3])],
                         [helper.make_value_info("y", helper.make_sequence_type_proto(
                             helper.make_map_type_proto(S, helper.make_tensor_type_proto(F, []))))]),
             {"x": probs}, "ZipMap with string keys")


def read_safetensors(path):
    """The package payload, read with nothing but the safetensors format description."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        assert spec["dtype"] == "F64", spec
        a, b = spec["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f8").reshape(spec["shape"])
    return out


def native_expected(package, columns):
    """What a Slipway package must answer, computed from `slipway.json` and the payload alone:
    the documented preprocessing (median fill, standardise; most-frequent fill, one-hot with
    unknown categories as zeros), then the dense layers."""
    with open(os.path.join(package, "slipway.json")) as f:
        m = json.load(f)
    weights = read_safetensors(os.path.join(package, m["payload"]["file"]))
    rows = len(next(iter(columns.values())))
    blocks = []
    for feat in m["features"]:
        col = columns[feat["name"]]
        if feat["kind"] == "numeric":
            v = np.array([feat["median"] if (x is None or np.isnan(x)) else x for x in col], dtype=np.float64)
            blocks.append(((v - feat["mean"]) / feat["std"]).reshape(-1, 1))
        else:
            cats = feat["categories"]
            oh = np.zeros((rows, len(cats)))
            for i, x in enumerate(col):
                x = feat["most_frequent"] if x in ("", "NA") else x
                if x in cats:
                    oh[i, cats.index(x)] = 1.0
            blocks.append(oh)
    h = np.hstack(blocks)
    for i, layer in enumerate(m["model"]["layers"]):
        h = h @ weights[f"layers.{i}.weight"] + weights[f"layers.{i}.bias"]
        act = layer["activation"]
        if act == "relu":
            h = np.maximum(h, 0)
        elif act == "tanh":
            h = np.tanh(h)
        elif act == "sigmoid":
            h = 1 / (1 + np.exp(-h))
        elif act == "softmax":
            e = np.exp(h - h.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
    classes = m["target"].get("classes", [])
    if m["task"] == "binary_classification":
        p = h[:, 0]
        t = m["target"].get("threshold", 0.5)
        return {"probability": p, "label": np.array([classes[int(x >= t)] for x in p])}
    if m["task"] == "multiclass_classification":
        return {"probabilities": h, "label": np.array([classes[int(i)] for i in h.argmax(axis=1)])}
    return {"prediction": h[:, 0]}


def native_cases():
    """Native packages trained by the slipway binary (env SLIPWAY, default target/release/slipway),
    answered by an independent numpy reading of the package format."""
    import subprocess
    slipway = os.environ.get("SLIPWAY", os.path.join(HERE, "..", "target", "release", "slipway"))
    specs = [
        ("native_logistic_credit", "german_credit.csv", "creditability",
         ["--model", "logistic", "--positive-class", "bad"]),
        ("native_mlp_penguins", "penguins.csv", "species",
         ["--model", "mlp", "--hidden", "8", "--epochs", "30", "--ignore", "year"]),
        ("native_linear_mpg", "auto_mpg.csv", "Miles_per_Gallon", ["--model", "linear", "--ignore", "Name"]),
    ]
    for case, data, target, extra in specs:
        package = os.path.join(HERE, "native", case)
        subprocess.run([os.path.abspath(slipway), "train", "--data", f"data/{data}", "--target", target,
                        "--seed", "7", "--out", os.path.relpath(package, os.path.join(HERE, "..")), "--json", *extra],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=os.path.join(HERE, ".."))
        with open(os.path.join(package, "slipway.json")) as f:
            m = json.load(f)
        rows = read_csv(data)
        rng = np.random.default_rng(SEED)
        pick = [rows[i] for i in rng.choice(len(rows), size=ROWS, replace=False)]
        pick[0] = dict(pick[0])
        columns, inputs = {}, []
        for feat in m["features"]:
            raw = [r[feat["name"]] for r in pick]
            if feat["kind"] == "numeric":
                vals = [None if x in ("", "NA") else float(x) for x in raw]
                vals[0] = None  # one missing value per numeric column
                columns[feat["name"]] = [np.nan if v is None else v for v in vals]
                inputs.append({"name": feat["name"], "datatype": "FP64", "shape": [ROWS], "data": vals})
            else:
                raw[1] = "never-seen-in-training"
                raw[2] = ""
                columns[feat["name"]] = raw
                inputs.append({"name": feat["name"], "datatype": "BYTES", "shape": [ROWS], "data": raw})
        expected = native_expected(package, columns)
        outputs = [tensor_json(k, v) for k, v in expected.items()]
        fixture = {"case": case, "notes": f"native package trained on {data}, expected by numpy from the package format",
                   "package": f"native/{case}", "rtol": 1e-9, "inputs": inputs, "outputs": outputs,
                   "expected_by": "numpy " + np.__version__}
        with open(os.path.join(OUT, case + ".json"), "w") as f:
            json.dump(fixture, f, separators=(",", ":"))
            f.write("\n")
        print(f"{case:32s} native package → {', '.join(expected)}")


def main():
    which = sys.argv[1:] or ["sklearn", "boosting", "handmade", "native"]
    if "native" in which:
        native_cases()
    if "handmade" in which:
        handmade_cases()
    if "sklearn" in which:
        sklearn_cases()
    if "boosting" in which:
        boosting_cases()


if __name__ == "__main__":
    main()
