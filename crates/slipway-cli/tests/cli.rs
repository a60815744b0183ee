//! The `slipway` binary, run as a process, as a user or a CI pipeline runs it.

mod common;

use std::path::Path;

use common::{data, ok_json, s, slipway};
use serde_json::Value;

/// Runs a command that must fail with one line of error; returns its exit code and stderr.
fn fails(args: &[&str]) -> (i32, String) {
    let (code, stderr) = common::fails(args);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line of error expected: {stderr}"
    );
    (code, stderr)
}

#[test]
fn train_eval_predict_credit_model() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("credit");
    let credit = data("german_credit.csv");
    let trained = ok_json(&[
        "train",
        "--data",
        s(&credit),
        "--target",
        "creditability",
        "--positive-class",
        "bad",
        "--model",
        "logistic",
        "--out",
        s(&pkg),
        "--json",
    ]);
    let auc = trained["metrics"]["roc_auc"].as_f64().unwrap();
    assert!((0.70..0.90).contains(&auc), "roc_auc {auc}");
    for key in [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "pr_auc",
        "log_loss",
        "brier",
        "ks",
        "gini",
    ] {
        assert!(trained["metrics"][key].is_f64(), "missing {key}");
    }
    assert_eq!(trained["rows"]["test"], 200);
    assert!(pkg.join("slipway.json").is_file() && pkg.join("model.safetensors").is_file());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(pkg.join("slipway.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["lineage"]["dataset_sha256"],
        "01f2981fc8f44de5ed05b904318afb1e78390c34def2cb46015e0c3f99be286c"
    );
    assert_eq!(manifest["target"]["positive_class"], "bad");
    // `models show` takes the package folder too (it took registry references only).
    let shown = ok_json(&["models", "show", s(&pkg), "--json"]);
    assert_eq!(
        (&shown["registered"], &shown["metrics"], &shown["signature"]),
        (
            &Value::from(false),
            &manifest["metrics"],
            &manifest["signature"]
        )
    );
    // Named after its folder, not after the data file (both models of one CSV were "german_credit").
    assert_eq!(manifest["name"], pkg.file_name().unwrap().to_str().unwrap());
    assert_eq!(manifest["features"].as_array().unwrap().len(), 20);
    assert_eq!(manifest["signature"]["inputs"][0]["datatype"], "BYTES");
    // `models example`: categories (most frequent first) and ranges from the profile, and a
    // record of typical values; the text form prints both curl commands.
    let ex = ok_json(&["models", "example", s(&pkg), "--json"]);
    let housing = ex["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "housing")
        .unwrap();
    assert_eq!(
        housing["categories"],
        serde_json::json!(["own", "rent", "for free"])
    );
    assert_eq!(ex["v1"]["instances"][0]["housing"], "own");
    let age = ex["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "age_in_years")
        .unwrap();
    assert_eq!(
        (age["min"].as_f64(), age["max"].as_f64()),
        (Some(19.0), Some(75.0))
    );
    assert_eq!(ex["v1"]["instances"][0]["age_in_years"], age["median"]);
    assert_eq!(ex["v2"]["inputs"].as_array().unwrap().len(), 20);
    let text = slipway(&["models", "example", s(&pkg), "--url", "http://scoring:9000"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("`probability` is that of `bad`")
            && text.contains("age_in_years")
            && text.contains("19 … 75")
            && text.contains("curl -s http://scoring:9000/v1/models/")
            && text.contains("curl -s http://scoring:9000/v2/models/"),
        "{text}"
    );

    // Evaluating on all rows gives a report of the same shape.
    let eval = ok_json(&["eval", "--model", s(&pkg), "--data", s(&credit), "--json"]);
    assert_eq!(eval["rows"], 1000);
    assert!(eval["metrics"]["roc_auc"].as_f64().unwrap() > 0.7);
    assert_eq!(
        eval["report"]["confusion"]["tp"].as_u64().unwrap()
            + eval["report"]["confusion"]["fn"].as_u64().unwrap(),
        300
    );
    // It is the training file: said so, with the held-out figures beside (it was silent).
    assert_eq!(eval["trained_on_this_data"], true);
    assert_eq!(eval["held_out_metrics"], manifest["metrics"]);
    let out = slipway(&["eval", "--model", s(&pkg), "--data", s(&credit)]);
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && warned.contains("was trained on (same SHA-256)")
            && warned.contains("held-out figures")
            && warned.contains("roc_auc 0."),
        "{warned}"
    );
    // A file it was not trained on gets no warning.
    let other = tmp.path().join("first_rows.csv");
    let text = std::fs::read_to_string(&credit).unwrap();
    std::fs::write(
        &other,
        text.lines().take(301).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let fresh = ok_json(&["eval", "--model", s(&pkg), "--data", s(&other), "--json"]);
    assert_eq!(fresh["trained_on_this_data"], false);

    // Predict keeps an id column and agrees with eval's confusion matrix.
    let with_id = tmp.path().join("with_id.csv");
    let mut text = String::new();
    for (i, line) in std::fs::read_to_string(&credit)
        .unwrap()
        .lines()
        .enumerate()
    {
        text.push_str(&if i == 0 {
            format!("applicant_id,{line}\n")
        } else {
            format!("A{i},{line}\n")
        });
    }
    std::fs::write(&with_id, text).unwrap();
    let scores = tmp.path().join("scores.csv");
    let summary = ok_json(&[
        "predict",
        "--model",
        s(&pkg),
        "--data",
        s(&with_id),
        "--out",
        s(&scores),
        "--id-column",
        "applicant_id",
        "--json",
    ]);
    assert_eq!(summary["rows"], 1000);
    let out = std::fs::read_to_string(&scores).unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("applicant_id,probability,label"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1000);
    assert!(rows[0].starts_with("A1,"));
    let predicted_bad = rows.iter().filter(|r| r.ends_with(",bad")).count() as u64;
    let c = &eval["report"]["confusion"];
    assert_eq!(
        predicted_bad,
        c["tp"].as_u64().unwrap() + c["fp"].as_u64().unwrap()
    );
    for r in &rows {
        let p: f64 = r.split(',').nth(1).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
    }
}

#[test]
fn training_is_bit_for_bit_reproducible_from_a_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let credit = data("breast_cancer.csv");
    let run = |dir: &str, seed: &str| {
        let pkg = tmp.path().join(dir);
        ok_json(&[
            "train",
            "--data",
            s(&credit),
            "--target",
            "diagnosis",
            "--model",
            "mlp",
            "--hidden",
            "8,4",
            "--epochs",
            "20",
            "--seed",
            seed,
            "--out",
            s(&pkg),
            "--json",
        ]);
        std::fs::read(pkg.join("model.safetensors")).unwrap()
    };
    let a = run("a", "7");
    let b = run("b", "7");
    let c = run("c", "8");
    assert_eq!(a, b, "same seed, same weights");
    assert_ne!(a, c, "another seed, other weights");
}

#[test]
fn tutorial_single_dense_unit_with_sgd_and_mse() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("mpg");
    let mpg = data("auto_mpg.csv");
    let out = slipway(&[
        "train",
        "--data",
        s(&mpg),
        "--target",
        "Miles_per_Gallon",
        "--model",
        "mlp",
        "--hidden",
        "",
        "--features",
        "Horsepower,Weight_in_lbs",
        "--optimizer",
        "sgd",
        "--loss",
        "mse",
        "--lr",
        "0.01",
        "--epochs",
        "100",
        "--patience",
        "0",
        "--out",
        s(&pkg),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dropped 8 rows"),
        "the unlabelled rows are reported: {stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "regression");
    assert_eq!(v["fit"]["epochs_run"], 100);
    assert_eq!(
        v["fit"]["parameters"], 3,
        "one unit on two features: two weights and a bias"
    );
    assert!(
        v["metrics"]["r2"].as_f64().unwrap() > 0.5,
        "{}",
        v["metrics"]
    );
    let scores = tmp.path().join("mpg.csv");
    ok_json(&[
        "predict",
        "--model",
        s(&pkg),
        "--data",
        s(&mpg),
        "--out",
        s(&scores),
        "--json",
    ]);
    let text = std::fs::read_to_string(&scores).unwrap();
    assert_eq!(text.lines().next(), Some("prediction"));
    assert_eq!(
        text.lines().count(),
        407,
        "every row is scored, labelled or not"
    );
}

#[test]
fn multiclass_mlp_and_linear_regression() {
    let tmp = tempfile::tempdir().unwrap();
    let v = ok_json(&[
        "train",
        "--data",
        s(&data("penguins.csv")),
        "--target",
        "species",
        "--model",
        "mlp",
        "--lr",
        "0.01",
        "--out",
        s(&tmp.path().join("p")),
        "--json",
    ]);
    assert_eq!(v["task"], "multiclass_classification");
    assert!(
        v["metrics"]["accuracy"].as_f64().unwrap() > 0.9,
        "{}",
        v["metrics"]
    );
    assert_eq!(v["report"]["per_class"].as_array().unwrap().len(), 3);
    let scores = tmp.path().join("p.csv");
    ok_json(&[
        "predict",
        "--model",
        s(&tmp.path().join("p")),
        "--data",
        s(&data("penguins.csv")),
        "--out",
        s(&scores),
        "--json",
    ]);
    assert_eq!(
        std::fs::read_to_string(&scores).unwrap().lines().next(),
        Some("probability_Adelie,probability_Chinstrap,probability_Gentoo,label")
    );
    let v = ok_json(&[
        "train",
        "--data",
        s(&data("auto_mpg.csv")),
        "--target",
        "Miles_per_Gallon",
        "--model",
        "linear",
        "--ignore",
        "Name",
        "--out",
        s(&tmp.path().join("l")),
        "--json",
    ]);
    assert!(
        v["metrics"]["r2"].as_f64().unwrap() > 0.75,
        "{}",
        v["metrics"]
    );
    assert_eq!(v["rows"]["dropped_missing_target"], 8);
}

#[test]
fn tune_picks_by_cross_validation_and_writes_the_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("tuned");
    let v = ok_json(&[
        "tune",
        "--data",
        s(&data("breast_cancer.csv")),
        "--target",
        "diagnosis",
        "--model",
        "mlp",
        "--grid",
        "lr=0.01,0.001;hidden=4,8x4",
        "--epochs",
        "30",
        "--folds",
        "3",
        "--out",
        s(&pkg),
        "--json",
    ]);
    let ranking = v["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), 4);
    assert_eq!(v["metric"], "roc_auc");
    let means: Vec<f64> = ranking
        .iter()
        .map(|r| r["mean"].as_f64().unwrap())
        .collect();
    assert!(
        means.windows(2).all(|w| w[0] >= w[1]),
        "best first: {means:?}"
    );
    assert_eq!(ranking[0]["folds"].as_array().unwrap().len(), 3);
    assert!(pkg.join("slipway.json").is_file());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(pkg.join("slipway.json")).unwrap()).unwrap();
    let best = &ranking[0]["params"];
    assert_eq!(
        manifest["params"]["lr"].as_f64().unwrap(),
        best[0][1].as_str().unwrap().parse::<f64>().unwrap()
    );

    let (code, err) = fails(&[
        "tune",
        "--data",
        s(&data("breast_cancer.csv")),
        "--target",
        "diagnosis",
        "--grid",
        "speed=1",
        "--out",
        s(&pkg),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("grid key `speed`"), "{err}");
}

#[test]
fn bad_input_gets_one_clear_line_and_the_right_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pkg");
    let file = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let train = |path: &Path, target: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            s(path),
            "--target",
            target,
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        fails(
            &args
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
    };

    let (code, err) = train(Path::new("/no/such.csv"), "y", &[]);
    assert_eq!(code, 66);
    assert!(err.contains("/no/such.csv"), "{err}");

    // Logistic regression (the default) on a measurement: refused, naming the model that fits
    // (it built a 129-class classifier with accuracy 0.13, without a word).
    let (code, err) = train(&data("auto_mpg.csv"), "Miles_per_Gallon", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("distinct numbers") && err.contains("--model linear"),
        "{err}"
    );
    // With --json, the error is one JSON object on stderr, with the exit code.
    let out = slipway(&[
        "eval",
        "--model",
        "no-such-package",
        "--data",
        s(&data("german_credit.csv")),
        "--registry",
        s(&tmp.path().join("no-registry")),
        "--json",
    ]);
    let err: Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(66));
    assert_eq!(err["exit_code"], 66);
    assert!(
        err["error"].as_str().unwrap().contains("no-such-package"),
        "{err}"
    );
    // A mistyped package folder is named as such, not only as a missing registry.
    let (code, err) = fails(&[
        "eval",
        "--model",
        "credti-mlp",
        "--data",
        s(&data("german_credit.csv")),
        "--registry",
        s(&tmp.path().join("no-registry")),
    ]);
    assert_eq!(code, 66, "{err}");
    assert!(
        err.contains("`credti-mlp` is no package folder here") && err.contains("no registry at"),
        "{err}"
    );
    // `--out` onto a file: the package is a folder, said so (was "Not a directory").
    let a_file = file("taken", "not a package");
    let (code, err) = fails(&[
        "train",
        "--data",
        s(&data("german_credit.csv")),
        "--target",
        "creditability",
        "--out",
        s(&a_file),
    ]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("is a file, and a package is a folder"),
        "{err}"
    );
    // `predict --out` into a folder that does not exist names the folder, not an internal
    // temporary file.
    let missing = tmp.path().join("no/such/folder/scores.csv");
    let (code, err) = fails(&[
        "predict",
        "--model",
        s(&slipway_testkit::credit_package()),
        "--data",
        s(&data("german_credit.csv")),
        "--out",
        s(&missing),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("does not exist; create it first") && !err.contains("partial"),
        "{err}"
    );

    let (code, err) = train(&file("empty.csv", ""), "y", &[]);
    assert_eq!(code, 65);
    assert!(err.contains("empty.csv: the file is empty"), "{err}");

    let (code, err) = train(&file("ragged.csv", "x,y\n1,a\n2,b,3\n"), "y", &[]);
    assert_eq!(code, 65);
    assert!(
        err.contains("ragged.csv:3: this row has 3 fields but the header has 2"),
        "{err}"
    );

    let (code, err) = train(&data("german_credit.csv"), "risk", &[]);
    assert_eq!(code, 65);
    assert!(
        err.contains("no column named `risk`") && err.contains("creditability"),
        "{err}"
    );

    let (code, err) = train(&file("one.csv", "x,y\n1,a\n2,a\n"), "y", &[]);
    assert_eq!(code, 65);
    assert!(
        err.contains("column `y`: the target has a single class `a`"),
        "{err}"
    );

    let (code, err) = train(
        &data("german_credit.csv"),
        "creditability",
        &["--model", "linear"],
    );
    assert_eq!(code, 65);
    assert!(
        err.contains("german_credit.csv:2: column `creditability`: the target must be numeric"),
        "{err}"
    );

    let (code, err) = train(&file("allna.csv", "x,z,y\n1,,a\n2,NA,b\n3,?,a\n"), "y", &[]);
    assert_eq!(code, 65);
    assert!(
        err.contains("column `z`: the column has no value in any row")
            && err.contains("--ignore z"),
        "{err}"
    );

    let (code, err) = train(
        &data("german_credit.csv"),
        "creditability",
        &["--test-size", "1.5"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--test-size"), "{err}");

    let (code, err) = train(
        &data("german_credit.csv"),
        "creditability",
        &["--hidden", "32,x"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("hidden layer size"), "{err}");

    // Package problems.
    let (code, err) = fails(&[
        "eval",
        "--model",
        s(&tmp.path().join("nope")),
        "--data",
        s(&data("german_credit.csv")),
    ]);
    assert_eq!(code, 66);
    assert!(err.contains("no such folder"), "{err}");
    let (code, err) = fails(&[
        "predict",
        "--model",
        s(tmp.path()),
        "--data",
        s(&data("german_credit.csv")),
        "--out",
        "-",
    ]);
    assert_eq!(code, 65);
    assert!(err.contains("has no slipway.json"), "{err}");

    let pkg = tmp.path().join("credit");
    ok_json(&[
        "train",
        "--data",
        s(&data("german_credit.csv")),
        "--target",
        "creditability",
        "--out",
        s(&pkg),
        "--json",
    ]);
    // A CSV that lacks a feature column.
    let lacking = file("lacking.csv", "duration_in_month,creditability\n6,good\n");
    let (code, err) = fails(&[
        "predict",
        "--model",
        s(&pkg),
        "--data",
        s(&lacking),
        "--out",
        s(&tmp.path().join("o.csv")),
    ]);
    assert_eq!(code, 65);
    assert!(
        err.contains("needs a column named `status_of_existing_checking_account`"),
        "{err}"
    );
    assert!(
        !tmp.path().join("o.csv").exists(),
        "no partial output on failure"
    );
    // A non-number in a numeric feature, named by line and column.
    let credit = std::fs::read_to_string(data("german_credit.csv")).unwrap();
    let mut lines: Vec<String> = credit.lines().take(4).map(str::to_string).collect();
    lines[3] = lines[3].replacen(",12,", ",twelve,", 1);
    let bad = file("bad_number.csv", &(lines.join("\n") + "\n"));
    let (code, err) = fails(&[
        "predict",
        "--model",
        s(&pkg),
        "--data",
        s(&bad),
        "--out",
        "-",
    ]);
    assert_eq!(code, 65);
    assert!(
        err.contains("bad_number.csv:4: column `duration_in_month`: `twelve` is not a number"),
        "{err}"
    );
    // Tampered weights are refused.
    let weights = pkg.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(&weights, bytes).unwrap();
    let (code, err) = fails(&[
        "eval",
        "--model",
        s(&pkg),
        "--data",
        s(&data("german_credit.csv")),
    ]);
    assert_eq!(code, 65);
    assert!(err.contains("model.safetensors is corrupt"), "{err}");
    // A manifest that is not JSON.
    std::fs::write(pkg.join("slipway.json"), "{").unwrap();
    let (code, err) = fails(&[
        "eval",
        "--model",
        s(&pkg),
        "--data",
        s(&data("german_credit.csv")),
    ]);
    assert_eq!(code, 65);
    assert!(err.contains("slipway.json: invalid manifest"), "{err}");
}

#[test]
fn unseen_categories_are_scored_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("credit");
    ok_json(&[
        "train",
        "--data",
        s(&data("german_credit.csv")),
        "--target",
        "creditability",
        "--out",
        s(&pkg),
        "--json",
    ]);
    let credit = std::fs::read_to_string(data("german_credit.csv")).unwrap();
    let mut lines: Vec<String> = credit.lines().take(3).map(str::to_string).collect();
    lines[1] = lines[1].replacen(",radio/television,", ",spaceship,", 1);
    let path = tmp.path().join("unseen.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let v = ok_json(&[
        "predict",
        "--model",
        s(&pkg),
        "--data",
        s(&path),
        "--out",
        s(&tmp.path().join("o.csv")),
        "--json",
    ]);
    assert_eq!(v["rows"], 2);
    assert_eq!(v["unseen_categories"], 1);
}

#[test]
fn demo_trains_and_scores_the_credit_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = slipway(&["demo", "--dir", s(&dir)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ROC-AUC") && text.contains("Scores for the first five applicants"),
        "{text}"
    );
    assert!(dir.join("credit-logistic/slipway.json").is_file());
    assert!(dir.join("credit-mlp/slipway.json").is_file());
    assert!(text.contains("to @production"), "{text}");
    let show = ok_json(&[
        "models",
        "show",
        "credit@production",
        "--registry",
        s(&dir.join("registry")),
        "--json",
    ]);
    assert!(show["metrics"]["roc_auc"].as_f64().unwrap() >= 0.7);
    // A rerun trains the same models again: no new versions pile up, and it says so.
    let again = slipway(&["demo", "--dir", s(&dir)]);
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        text.contains("already there: the same package")
            && text.contains("@production already points at credit:"),
        "{text}"
    );
    let listed = ok_json(&[
        "models",
        "list",
        "--registry",
        s(&dir.join("registry")),
        "--json",
    ]);
    assert_eq!(listed["models"][0]["versions"], 2, "{listed}");
    assert_eq!(
        std::fs::read_to_string(dir.join("scores.csv"))
            .unwrap()
            .lines()
            .count(),
        6
    );
}

#[test]
fn separate_test_file_and_multi_chunk_scoring() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(data("breast_cancer.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (header, rows) = (lines[0], &lines[1..]);
    let train_csv = tmp.path().join("train.csv");
    let test_csv = tmp.path().join("test.csv");
    let pick = |keep: fn(usize) -> bool| {
        let body: Vec<&str> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(_, r)| *r)
            .collect();
        format!("{header}\n{}\n", body.join("\n"))
    };
    std::fs::write(&train_csv, pick(|i| i % 5 != 0)).unwrap();
    std::fs::write(&test_csv, pick(|i| i % 5 == 0)).unwrap();
    let pkg = tmp.path().join("bc");
    let v = ok_json(&[
        "train",
        "--data",
        s(&train_csv),
        "--test-data",
        s(&test_csv),
        "--target",
        "diagnosis",
        "--out",
        s(&pkg),
        "--json",
    ]);
    assert_eq!(
        v["rows"]["test"], 114,
        "the whole test file, no split of --data"
    );
    assert_eq!(
        v["rows"]["train"].as_u64().unwrap() + v["rows"]["validation"].as_u64().unwrap(),
        455
    );
    assert!(v["metrics"]["roc_auc"].as_f64().unwrap() > 0.95);

    // 10,000 rows cross several scoring chunks; every row comes out, in order.
    let big = tmp.path().join("big.csv");
    let mut body = format!("row,{header}\n");
    for i in 0..10_000 {
        body.push_str(&format!("{i},{}\n", rows[i % rows.len()]));
    }
    std::fs::write(&big, body).unwrap();
    let out = tmp.path().join("big-scores.csv");
    let v = ok_json(&[
        "predict",
        "--model",
        s(&pkg),
        "--data",
        s(&big),
        "--out",
        s(&out),
        "--id-column",
        "row",
        "--json",
    ]);
    assert_eq!(v["rows"], 10_000);
    let scored = std::fs::read_to_string(&out).unwrap();
    for (i, line) in scored.lines().skip(1).enumerate() {
        assert!(line.starts_with(&format!("{i},")), "row {i}: {line}");
    }
}

/// Cases found in review: each once wrote a package that could not be read back, picked a
/// winner at random, or blamed the wrong file.
#[test]
fn review_regressions() {
    let tmp = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // 30 `no` and 2 `yes`: the test split holds no `yes`, so ROC-AUC is undefined there. The
    // package must still load, without the undefined metrics.
    let mut imbalanced = String::from("x,y\n");
    for i in 0..32 {
        imbalanced.push_str(&format!("{i},{}\n", if i < 30 { "no" } else { "yes" }));
    }
    let imb = file("imb.csv", &imbalanced);
    let pkg = tmp.path().join("imb");
    let v = ok_json(&[
        "train",
        "--data",
        s(&imb),
        "--target",
        "y",
        "--out",
        s(&pkg),
        "--json",
    ]);
    assert!(v["metrics"].get("roc_auc").is_none(), "{}", v["metrics"]);
    assert_eq!(
        v["rows"]["validation"], 0,
        "logistic regression trains on the validation share"
    );
    ok_json(&[
        "predict",
        "--model",
        s(&pkg),
        "--data",
        s(&imb),
        "--out",
        s(&tmp.path().join("imb-scores.csv")),
        "--json",
    ]);
    // Tuning on folds where the metric is undefined is an error, not a random winner.
    let (code, err) = fails(&[
        "tune",
        "--data",
        s(&imb),
        "--target",
        "y",
        "--grid",
        "l2=0.001,0.1",
        "--folds",
        "5",
        "--out",
        s(&tmp.path().join("t")),
    ]);
    assert_eq!(code, 65);
    assert!(err.contains("roc_auc is undefined on fold"), "{err}");

    // The decision threshold chosen at training is the default of predict.
    let credit = data("german_credit.csv");
    let strict = tmp.path().join("strict");
    ok_json(&[
        "train",
        "--data",
        s(&credit),
        "--target",
        "creditability",
        "--threshold",
        "0.9",
        "--out",
        s(&strict),
        "--json",
    ]);
    let scores = tmp.path().join("strict.csv");
    ok_json(&[
        "predict",
        "--model",
        s(&strict),
        "--data",
        s(&credit),
        "--out",
        s(&scores),
        "--json",
    ]);
    for line in std::fs::read_to_string(&scores).unwrap().lines().skip(1) {
        let (p, label) = line.split_once(',').unwrap();
        let p: f64 = p.parse().unwrap();
        assert_eq!(label == "bad", p >= 0.9, "{line}");
    }

    // A one-unit softmax is refused.
    let (code, err) = fails(&[
        "train",
        "--data",
        s(&credit),
        "--target",
        "creditability",
        "--model",
        "mlp",
        "--output-activation",
        "softmax",
        "--out",
        s(&tmp.path().join("sm")),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("softmax over one output"), "{err}");

    // Writing scores onto a folder is an I/O error naming it, and leaves nothing behind.
    let folder = tmp.path().join("a-folder");
    std::fs::create_dir(&folder).unwrap();
    let (code, err) = fails(&[
        "predict",
        "--model",
        s(&strict),
        "--data",
        s(&credit),
        "--out",
        s(&folder),
    ]);
    assert_eq!(code, 74);
    assert!(err.contains("a-folder"), "{err}");
    assert!(!tmp.path().join("a-folder.partial").exists());

    // --out never replaces a folder that is not a package.
    std::fs::write(folder.join("notes.txt"), "mine").unwrap();
    let (code, err) = fails(&[
        "train",
        "--data",
        s(&credit),
        "--target",
        "creditability",
        "--out",
        s(&folder),
    ]);
    assert_eq!(code, 65);
    assert!(err.contains("not a package to replace"), "{err}");
    assert!(folder.join("notes.txt").exists());
    // ...and does replace a package, whole.
    ok_json(&[
        "train",
        "--data",
        s(&credit),
        "--target",
        "creditability",
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--out",
        s(&strict),
        "--json",
    ]);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(strict.join("slipway.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["model"]["kind"], "mlp");

    // Line numbers count the file's lines, not the rows kept.
    let labelled = file("ev.csv", "a,y\n1,\n2,\n0.5,good\n0.7,ugly\n");
    let (code, err) = fails(&["eval", "--model", s(&strict), "--data", s(&labelled)]);
    assert_eq!(code, 65);
    assert!(err.contains("needs a column named"), "{err}");
    let mut text = std::fs::read_to_string(&credit).unwrap();
    let header_end = text.find('\n').unwrap() + 1;
    let first = text[header_end..].lines().next().unwrap().to_string();
    let unlabelled = first.rsplit_once(',').unwrap().0.to_string() + ",\n";
    text.insert_str(header_end, &unlabelled);
    let ugly = first.rsplit_once(',').unwrap().0.to_string() + ",ugly\n";
    text.push_str(&ugly);
    let shifted = file("shifted.csv", &text);
    let (code, err) = fails(&["eval", "--model", s(&strict), "--data", s(&shifted)]);
    assert_eq!(code, 65);
    assert!(
        err.contains("shifted.csv:1003: column `creditability`: label `ugly`"),
        "{err}"
    );
}

/// `--input matrix` writes a package that takes one `[rows, features]` FP64 tensor; over
/// categorical columns it is refused with exit code 65, naming them.
#[test]
fn train_with_a_matrix_input() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("cancer");
    ok_json(&[
        "train",
        "--data",
        s(&data("breast_cancer.csv")),
        "--target",
        "diagnosis",
        "--input",
        "matrix",
        "--out",
        s(&pkg),
        "--json",
    ]);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(pkg.join("slipway.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["signature"]["inputs"],
        serde_json::json!([{"name": "features", "datatype": "FP64", "shape": [-1, 30]}])
    );
    let (code, err) = fails(&[
        "train",
        "--data",
        s(&data("german_credit.csv")),
        "--target",
        "creditability",
        "--input",
        "matrix",
        "--out",
        s(&tmp.path().join("credit")),
    ]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("holds numbers only") && err.contains("housing"),
        "{err}"
    );
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_slipway()"),
        ("zsh", "#compdef slipway"),
        ("fish", "complete -c slipway"),
    ] {
        let out = slipway(&["completions", shell]);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && script.contains(marker), "{shell}");
        // Every command is offered.
        for command in ["train", "promote", "serve", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let (code, err) = common::fails(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");
}
