//! ONNX models through the `slipway` binary: import, eval, predict, and imports that must fail
//! without registering anything.

mod common;

use std::path::{Path, PathBuf};

use common::{data, fails, ok_json, s, slipway};

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../conformance/cases/{name}.onnx"))
}

fn listed(registry: &Path) -> usize {
    let v = ok_json(&["models", "list", "--registry", s(registry), "--json"]);
    v["models"].as_array().map_or(0, Vec::len)
}

#[test]
fn an_imported_gradient_boosting_model_evaluates_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    let v = ok_json(&[
        "import",
        s(&case("sk_gradient_boosting")),
        "--name",
        "cancer",
        "--features-from",
        s(&data("breast_cancer.csv")),
        "--target",
        "diagnosis",
        "--alias",
        "production",
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(v["reference"], "cancer:1");
    assert_eq!(v["engine"], "slipway");
    assert_eq!(v["task"], "binary_classification");
    assert_eq!(v["classes"], serde_json::json!(["benign", "malignant"]));
    assert_eq!(
        v["signature"]["inputs"][0]["shape"],
        serde_json::json!([-1, 30])
    );

    // `models show` prints the signature.
    let show = slipway(&["models", "show", "cancer:1", "--registry", s(&reg)]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("signature") && text.contains("probabilities") && text.contains("FP32"),
        "{text}"
    );

    let e = ok_json(&[
        "eval",
        "--model",
        "cancer@production",
        "--data",
        s(&data("breast_cancer.csv")),
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(e["rows"], 569);
    let auc = e["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.98, "{auc}");

    let out = dir.path().join("scores.csv");
    let p = slipway(&[
        "predict",
        "--model",
        "cancer:1",
        "--data",
        s(&data("breast_cancer.csv")),
        "--out",
        s(&out),
        "--registry",
        s(&reg),
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let scores = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = scores.lines().collect();
    assert_eq!(lines[0], "probability,label");
    assert_eq!(lines.len(), 570);
    let (p, label) = lines[1].split_once(',').unwrap();
    let p: f64 = p.parse().unwrap();
    assert_eq!(label, if p >= 0.5 { "malignant" } else { "benign" });
}

#[test]
fn regression_and_multiclass_imports_read_their_task_from_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    let v = ok_json(&[
        "import",
        s(&case("xgboost_regressor")),
        "--name",
        "mpg",
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(v["task"], "regression");
    let v = ok_json(&[
        "import",
        s(&case("sk_logistic_multiclass")),
        "--name",
        "penguins",
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(v["task"], "multiclass_classification");
    assert_eq!(v["classes"].as_array().unwrap().len(), 3);
    // A network whose graph names no classes needs them on the command line.
    let (code, err) = fails(&[
        "import",
        s(&case("torch_style_mlp")),
        "--name",
        "net",
        "--registry",
        s(&reg),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--classes"), "{err}");
    let v = ok_json(&[
        "import",
        s(&case("torch_style_mlp")),
        "--name",
        "net",
        "--classes",
        "a,b,c",
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(v["task"], "multiclass_classification");
    assert_eq!(listed(&reg), 3);
}

#[test]
fn imports_that_do_not_load_register_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    ok_json(&[
        "import",
        s(&case("sk_random_forest")),
        "--name",
        "rf",
        "--registry",
        s(&reg),
        "--json",
    ]);
    let audit_before = slipway(&["registry", "audit", "--registry", s(&reg), "--json"]).stdout;

    let (code, err) = fails(&[
        "import",
        s(&case("unsupported_svm")),
        "--name",
        "svm",
        "--registry",
        s(&reg),
    ]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("SVMClassifier") && err.contains("nothing was registered"),
        "{err}"
    );

    let bytes = std::fs::read(case("sk_random_forest")).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, err) = fails(&["import", s(&cut), "--name", "cut", "--registry", s(&reg)]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("byte ") && err.contains("truncated"), "{err}");

    let text = dir.path().join("notes.onnx");
    std::fs::write(&text, "age,income\n41,5000\n").unwrap();
    let (code, err) = fails(&["import", s(&text), "--name", "notes", "--registry", s(&reg)]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("not a valid ONNX file"), "{err}");

    let (code, err) = fails(&[
        "import",
        s(&dir.path().join("missing.onnx")),
        "--name",
        "x",
        "--registry",
        s(&reg),
    ]);
    assert_eq!(code, 66, "{err}");

    // Wrong feature count for the matrix input.
    let (code, err) = fails(&[
        "import",
        s(&case("sk_random_forest")),
        "--name",
        "rf2",
        "--features",
        "a,b",
        "--registry",
        s(&reg),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("30 columns"), "{err}");

    assert_eq!(listed(&reg), 1);
    let audit_after = slipway(&["registry", "audit", "--registry", s(&reg), "--json"]).stdout;
    assert_eq!(audit_before, audit_after);
}

#[test]
fn eval_names_a_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    ok_json(&[
        "import",
        s(&case("sk_gradient_boosting")),
        "--name",
        "cancer",
        "--features-from",
        s(&data("breast_cancer.csv")),
        "--target",
        "diagnosis",
        "--registry",
        s(&reg),
        "--json",
    ]);
    let (code, err) = fails(&[
        "eval",
        "--model",
        "cancer",
        "--data",
        s(&data("german_credit.csv")),
        "--registry",
        s(&reg),
    ]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("mean_radius"), "{err}");
}

#[test]
fn a_batch_of_one_export_is_opened_with_input_shape() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    let csv = dir.path().join("rows.csv");
    let mut text = String::from("f0,f1,f2,f3,f4,f5\n");
    for r in 0..10 {
        text.push_str(&format!("{r},0.5,1,2,3,-1\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("out.csv");

    // Imported as exported, the graph takes one row: scoring ten says why it cannot.
    ok_json(&[
        "import",
        s(&case("torch_style_mlp_batch1")),
        "--name",
        "fixed",
        "--classes",
        "a,b,c",
        "--registry",
        s(&reg),
        "--json",
    ]);
    let (code, err) = fails(&[
        "predict",
        "--model",
        "fixed",
        "--data",
        s(&csv),
        "--out",
        s(&out),
        "--registry",
        s(&reg),
    ]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("[1, 6]"), "{err}");

    let v = ok_json(&[
        "import",
        s(&case("torch_style_mlp_batch1")),
        "--name",
        "open",
        "--classes",
        "a,b,c",
        "--input-shape",
        "input=-1,6",
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(
        v["signature"]["inputs"][0]["shape"],
        serde_json::json!([-1, 6])
    );
    let p = slipway(&[
        "predict",
        "--model",
        "open",
        "--data",
        s(&csv),
        "--out",
        s(&out),
        "--registry",
        s(&reg),
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 11);

    let (code, err) = fails(&[
        "import",
        s(&case("torch_style_mlp_batch1")),
        "--name",
        "x",
        "--classes",
        "a,b,c",
        "--input-shape",
        "input=-1,7",
        "--registry",
        s(&reg),
    ]);
    assert_eq!(code, 65, "{err}");
    let (code, err) = fails(&[
        "import",
        s(&case("torch_style_mlp_batch1")),
        "--name",
        "x",
        "--classes",
        "a,b,c",
        "--input-shape",
        "input",
        "--registry",
        s(&reg),
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn metrics_recorded_at_import_feed_the_gates() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    // Without data there are no metrics, so a metric gate cannot pass.
    ok_json(&[
        "import",
        s(&case("xgboost_binary")),
        "--name",
        "bare",
        "--features-from",
        s(&data("breast_cancer.csv")),
        "--target",
        "diagnosis",
        "--classes",
        "benign,malignant",
        "--registry",
        s(&reg),
        "--json",
    ]);
    let (code, err) = fails(&[
        "promote",
        "bare:1",
        "--to",
        "production",
        "--require",
        "roc_auc>=0.9",
        "--registry",
        s(&reg),
    ]);
    assert_eq!(code, 3, "{err}");

    // XGBoost labels the classes 0 and 1; name them as the CSV does.
    let v = ok_json(&[
        "import",
        s(&case("xgboost_binary")),
        "--name",
        "cancer",
        "--data",
        s(&data("breast_cancer.csv")),
        "--target",
        "diagnosis",
        "--classes",
        "benign,malignant",
        "--registry",
        s(&reg),
        "--json",
    ]);
    let auc = v["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.98, "{auc}");
    let show = ok_json(&[
        "models",
        "show",
        "cancer:1",
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(show["metrics"]["roc_auc"].as_f64().unwrap(), auc);
    ok_json(&[
        "promote",
        "cancer:1",
        "--to",
        "production",
        "--require",
        "roc_auc>=0.9",
        "--registry",
        s(&reg),
        "--json",
    ]);
}
