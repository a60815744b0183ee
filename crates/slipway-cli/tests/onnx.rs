//! ONNX models through the `slipway` binary: import, eval, predict, and imports that must fail
//! without registering anything.

mod common;

use std::path::{Path, PathBuf};

use common::{data, fails, ok_json, s, slipway};

fn case(name: &str) -> PathBuf {
    slipway_testkit::case(&format!("{name}.onnx"))
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
    // eval names the version as `models show` does.
    assert_eq!(
        (&e["model"], &e["version"]),
        (&serde_json::json!("cancer"), &serde_json::json!(1))
    );
    let text = slipway(&[
        "eval",
        "--model",
        "cancer@production",
        "--data",
        s(&data("breast_cancer.csv")),
        "--registry",
        s(&reg),
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    let digest = e["digest"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("cancer:1 (sha256 {})", &digest[..12])),
        "{text}"
    );

    // `models example`: the graph's 30 columns, one matrix row for V2, a record for V1.
    let ex = ok_json(&[
        "models",
        "example",
        "cancer@production",
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(ex["model"], "cancer");
    assert_eq!(ex["columns"].as_array().unwrap().len(), 30);
    assert_eq!(ex["columns"][0]["name"], "mean_radius");
    assert_eq!(ex["columns"][0]["kind"], "number");
    assert_eq!(ex["v2"]["inputs"][0]["name"], "X");
    assert_eq!(ex["v2"]["inputs"][0]["shape"], serde_json::json!([1, 30]));
    assert_eq!(ex["v1"]["instances"][0].as_object().unwrap().len(), 30);
    let body = slipway(&[
        "models",
        "example",
        "cancer",
        "--registry",
        s(&reg),
        "--body",
        "v2",
    ]);
    let v2: serde_json::Value = serde_json::from_slice(&body.stdout).unwrap();
    assert_eq!(v2, ex["v2"]);

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

    // Scores that cannot be read in the task's one answer shape are refused at import (they
    // were registered, and every V1 request, predict and eval then failed).
    let gb = case("sk_gradient_boosting");
    for (extra, says) in [
        (&["--scores-output", "label"][..], "not numbers"),
        (
            &["--classes", "a,b,c"][..],
            "has 2 columns, which does not fit a multiclass",
        ),
    ] {
        let mut args = vec!["import", s(&gb), "--name", "gb", "--registry", s(&reg)];
        args.extend_from_slice(extra);
        let (code, err) = fails(&args);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?}: {err}");
    }

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

/// Protocol Buffers by hand, enough for a one-node ONNX graph (the CLI tests run the binary
/// and link no ONNX library).
mod pb {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    pub fn int(field: u32, v: u64, out: &mut Vec<u8>) {
        varint(u64::from(field) << 3, out);
        varint(v, out);
    }
    pub fn bytes(field: u32, v: &[u8], out: &mut Vec<u8>) {
        varint((u64::from(field) << 3) | 2, out);
        varint(v.len() as u64, out);
        out.extend_from_slice(v);
    }
    /// A float tensor value-info `name` of shape `[N, width]`.
    pub fn matrix(name: &str, width: u64) -> Vec<u8> {
        let mut dims = Vec::new();
        let mut n = Vec::new();
        bytes(2, b"N", &mut n); // dim_param
        bytes(1, &n, &mut dims);
        let mut w = Vec::new();
        int(1, width, &mut w); // dim_value
        bytes(1, &w, &mut dims);
        let mut tensor = Vec::new();
        int(1, 1, &mut tensor); // elem_type FLOAT
        bytes(2, &dims, &mut tensor); // shape
        let mut ty = Vec::new();
        bytes(1, &tensor, &mut ty); // tensor_type
        let mut info = Vec::new();
        bytes(1, name.as_bytes(), &mut info);
        bytes(2, &ty, &mut info);
        info
    }
    /// `Y = Identity(X)` with X and Y declared `[N, width]`.
    pub fn identity_model(width: u64) -> Vec<u8> {
        let mut node = Vec::new();
        bytes(1, b"X", &mut node);
        bytes(2, b"Y", &mut node);
        bytes(3, b"copy", &mut node);
        bytes(4, b"Identity", &mut node);
        let mut graph = Vec::new();
        bytes(1, &node, &mut graph);
        bytes(2, b"hostile", &mut graph);
        bytes(11, &matrix("X", width), &mut graph);
        bytes(12, &matrix("Y", width), &mut graph);
        let mut opset = Vec::new();
        int(2, 13, &mut opset);
        let mut model = Vec::new();
        int(1, 8, &mut model); // ir_version
        bytes(7, &graph, &mut model);
        bytes(8, &opset, &mut model);
        model
    }
}

/// Runs `slipway` with its address space capped at 1 GiB: an import that tries to allocate
/// gigabytes dies instead of swapping the machine.
fn slipway_capped(args: &[&str]) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .output()
        .expect("sh runs")
}

#[test]
fn a_hostile_declared_width_is_refused_at_import_in_small_memory() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    // The same graph with a sane width imports under the same memory cap: the cap is not what
    // refuses the hostile ones.
    let sane = dir.path().join("sane.onnx");
    std::fs::write(&sane, pb::identity_model(4)).unwrap();
    let out = slipway_capped(&[
        "import",
        s(&sane),
        "--classes",
        "a,b,c,d",
        "--registry",
        s(&reg),
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for width in [(1u64 << 28) + 1, 1 << 40, 1 << 62] {
        let file = dir.path().join(format!("wide_{width}.onnx"));
        std::fs::write(&file, pb::identity_model(width)).unwrap();
        let out = slipway_capped(&["import", s(&file), "--registry", s(&reg)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "width {width}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains(&format!("{width}"))
                && err.contains("268435456 elements")
                && err.contains("nothing was registered"),
            "width {width}: {err}"
        );
    }
    assert_eq!(listed(&reg), 1);
}

#[test]
fn an_skl2onnx_mlp_imports_with_the_classes_its_graph_gathers_labels_from() {
    // conformance/cases/sk_mlp_*.onnx are MLPClassifier exports by skl2onnx 1.20 (made by
    // conformance/make.py): label = ArrayFeatureExtractor(classes, ArgMax(probabilities)).
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    let v = ok_json(&[
        "import",
        s(&case("sk_mlp_multiclass")),
        "--name",
        "penguins",
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(v["task"], "multiclass_classification");
    assert_eq!(
        v["classes"],
        serde_json::json!(["Adelie", "Chinstrap", "Gentoo"])
    );
    let v = ok_json(&[
        "import",
        s(&case("sk_mlp_binary")),
        "--name",
        "cancer",
        "--data",
        s(&data("breast_cancer.csv")),
        "--target",
        "diagnosis",
        "--registry",
        s(&reg),
        "--json",
    ]);
    assert_eq!(v["task"], "binary_classification");
    assert_eq!(v["classes"], serde_json::json!(["benign", "malignant"]));
    let auc = v["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.95, "{auc}");
}

#[test]
fn must_beat_compares_onnx_packages_on_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    let cancer = data("breast_cancer.csv");
    for (case_name, alias) in [
        ("sk_random_forest", Some("production")),
        ("sk_gradient_boosting", None),
    ] {
        let file = case(case_name);
        let mut args = vec![
            "import",
            s(&file),
            "--name",
            "cancer",
            "--features-from",
            s(&cancer),
            "--target",
            "diagnosis",
            "--registry",
            s(&reg),
            "--json",
        ];
        if let Some(a) = alias {
            args.extend(["--alias", a]);
        }
        ok_json(&args);
    }
    let log_loss = |reference: &str| {
        ok_json(&[
            "eval",
            "--model",
            reference,
            "--data",
            s(&cancer),
            "--registry",
            s(&reg),
            "--json",
        ])["metrics"]["log_loss"]
            .as_f64()
            .unwrap()
    };
    let (champion, challenger) = (log_loss("cancer:1"), log_loss("cancer:2"));
    assert_ne!(champion, challenger);
    let args = [
        "promote",
        "cancer:2",
        "--to",
        "production",
        "--data",
        s(&cancer),
        "--must-beat",
        "log_loss",
        "--registry",
        s(&reg),
        "--json",
    ];
    let out = slipway(&args);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("panicked"), "{text}");
    if challenger < champion {
        assert!(out.status.success(), "{text}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let check = &v["checks"][0];
        assert_eq!(check["candidate"].as_f64().unwrap(), challenger);
        assert_eq!(check["against"].as_f64().unwrap(), champion);
    } else {
        assert_eq!(out.status.code(), Some(3), "{text}");
        assert!(text.contains("log_loss beats cancer:1"), "{text}");
    }
}

#[test]
fn onnx_predict_streams_rows_out_before_it_reaches_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    ok_json(&[
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
    // 20,000 good rows, then one that is not a number: a streaming scorer has written the
    // chunks before it when it stops; one that reads the whole file first has written nothing.
    let csv = dir.path().join("rows.csv");
    let mut text = String::from("id,f0,f1,f2,f3,f4,f5\n");
    for r in 0..20_000 {
        text.push_str(&format!("r{r},{},0.5,1,2,3,-1\n", r % 7));
    }
    text.push_str("bad,x,0.5,1,2,3,-1\n");
    std::fs::write(&csv, text).unwrap();
    let out = slipway(&[
        "predict",
        "--model",
        "net",
        "--data",
        s(&csv),
        "--out",
        "-",
        "--id-column",
        "id",
        "--registry",
        s(&reg),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.contains("rows.csv:20002") && err.contains("`x` is not a number"),
        "{err}"
    );
    let scores = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = scores.lines().collect();
    assert_eq!(
        lines[0],
        "id,probability_a,probability_b,probability_c,label"
    );
    assert!(lines.len() > 16_000, "{} lines", lines.len());
    assert!(lines[1].starts_with("r0,"), "{}", lines[1]);
    // The complete file scores every row, in order.
    let good = dir.path().join("good.csv");
    let all = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&good, &all[..all.rfind("bad,").unwrap()]).unwrap();
    let out = dir.path().join("scores.csv");
    let p = slipway(&[
        "predict",
        "--model",
        "net",
        "--data",
        s(&good),
        "--out",
        s(&out),
        "--id-column",
        "id",
        "--registry",
        s(&reg),
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let scored = std::fs::read_to_string(&out).unwrap();
    assert_eq!(scored.lines().count(), 20_001);
    assert!(scored.lines().last().unwrap().starts_with("r19999,"));
}
