"""One scikit-learn fit that mirrors one `slipway train` run; prints one JSON line.

The preprocessing is Slipway's, expressed in scikit-learn:

    numeric:     SimpleImputer(median)        -> StandardScaler()   (population std, as slipway)
    categorical: SimpleImputer(most_frequent) -> OneHotEncoder(handle_unknown="ignore")
                 (categories sorted; an unseen category encodes as all zeros, as slipway)

A column is numeric when pandas reads it as a number dtype, which for the bench data sets
(no missing cells) is the same rule as slipway's "every non-missing field parses as a number".

Regularisation is mapped from slipway's `l2`:

    logistic: slipway minimises mean CE + l2/2·‖W‖²  ->  LogisticRegression(C = 1/(n_train·l2))
    mlp:      slipway minimises, per mini-batch, mean loss + l2/2·‖W‖²
              -> MLPClassifier(alpha = l2·batch_size)  (sklearn divides alpha by the batch size)

Timing: `fit_seconds` is the wall time of `pipeline.fit(X, y)` only (preprocessing + estimator).
`preprocess_seconds` is the wall time of fitting/transforming a clone of the preprocessor alone,
so `estimator_seconds = fit_seconds - preprocess_seconds` approximates the estimator's share
(slipway's `fit.seconds` covers its estimator only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_info


def preprocessor(num_cols: list[str], cat_cols: list[str]) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), num_cols),
            (
                "cat",
                Pipeline([
                    ("impute", SimpleImputer(strategy="most_frequent")),
                    ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                ]),
                cat_cols,
            ),
        ],
        sparse_threshold=0.0,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--positive-class", required=True)
    ap.add_argument("--model", choices=["logistic", "mlp"], required=True)
    ap.add_argument("--l2", type=float, help="slipway's l2 (default: 1/n_train for logistic, 1e-4 for mlp)")
    ap.add_argument("--max-iter", type=int, default=1000, help="L-BFGS iterations for logistic")
    ap.add_argument("--hidden", default="32,16")
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    t_start = time.perf_counter()
    train = pd.read_csv(args.train)
    test = pd.read_csv(args.test)
    y_train = (train.pop(args.target).astype(str) == args.positive_class).astype(int).to_numpy()
    y_test = (test.pop(args.target).astype(str) == args.positive_class).astype(int).to_numpy()
    num_cols = [c for c in train.columns if pd.api.types.is_numeric_dtype(train[c])]
    cat_cols = [c for c in train.columns if c not in num_cols]
    n_train = len(train)

    if args.model == "logistic":
        l2 = args.l2 if args.l2 is not None else 1.0 / n_train
        estimator = LogisticRegression(C=1.0 / (n_train * l2), solver="lbfgs", max_iter=args.max_iter)
        mapped = {"C": 1.0 / (n_train * l2)}
    else:
        l2 = args.l2 if args.l2 is not None else 1e-4
        hidden = tuple(int(h) for h in args.hidden.replace("x", ",").split(",") if h)
        mlp_class = MLPClassifier
        estimator = mlp_class(
            hidden_layer_sizes=hidden,
            activation=args.activation,
            solver="adam",
            learning_rate_init=args.lr,
            batch_size=args.batch_size,
            max_iter=args.epochs,
            n_iter_no_change=10**9,
            tol=0.0,
            early_stopping=False,
            shuffle=True,
            alpha=l2 * args.batch_size,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-8,
            random_state=args.seed,
        )
        mapped = {"alpha": l2 * args.batch_size}

    pipe = Pipeline([("pre", preprocessor(num_cols, cat_cols)), ("clf", estimator)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        pipe.fit(train, y_train)
        fit_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    clone(pipe.named_steps["pre"]).fit_transform(train, y_train)
    preprocess_seconds = time.perf_counter() - t0

    p = pipe.predict_proba(test)[:, list(pipe.classes_).index(1)]
    auc = roc_auc_score(y_test, p)
    p_train = pipe.predict_proba(train)[:, list(pipe.classes_).index(1)]
    clf = pipe.named_steps["clf"]
    n_iter = int(np.max(clf.n_iter_)) if args.model == "logistic" else int(clf.n_iter_)
    threads = sorted({(i["internal_api"], i["num_threads"]) for i in threadpool_info()})
    print(json.dumps({
        "model": args.model,
        "roc_auc": auc,
        "fit_seconds": fit_seconds,
        "preprocess_seconds": preprocess_seconds,
        "estimator_seconds": max(fit_seconds - preprocess_seconds, 0.0),
        "train_log_loss": log_loss(y_train, p_train, labels=[0, 1]),
        "test_log_loss": log_loss(y_test, p, labels=[0, 1]),
        "in_process_seconds": time.perf_counter() - t_start,
        "n_iter": n_iter,
        "n_train": n_train,
        "n_test": len(test),
        "encoded_width": int(pipe.named_steps["pre"].transform(test.head(1)).shape[1]),
        "l2": l2,
        "mapped": mapped,
        "threads": [f"{api}={n}" for api, n in threads],
        "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
