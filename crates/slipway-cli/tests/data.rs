//! What `train`, `eval` and `predict` make of the data they are given, run as processes:
//! warnings about columns that do not make features, delimiters other than a comma, and
//! gzip-compressed files.

mod common;

use std::path::{Path, PathBuf};

use common::{data, ok_json, s, slipway};

/// Runs `train` expecting failure with one line of error; returns its exit code and stderr.
fn train_fails(path: &Path, target: &str, out: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "train",
        "--data",
        s(path),
        "--target",
        target,
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    common::fails(&args)
}

fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn near_unique_and_bloating_columns_are_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| file(tmp.path(), name, text);
    // A near-unique column (auto_mpg's car names) is named, with how to leave it out; so is a
    // category long enough to bloat the package.
    let mpg = tmp.path().join("mpg-linear");
    let v = ok_json(&[
        "train",
        "--data",
        s(&data("auto_mpg.csv")),
        "--target",
        "Miles_per_Gallon",
        "--model",
        "linear",
        "--out",
        s(&mpg),
        "--json",
    ]);
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].as_str().unwrap().contains("column `Name` has")
            && warnings[0].as_str().unwrap().contains("--ignore Name"),
        "{warnings:?}"
    );
    let said = slipway(&[
        "train",
        "--data",
        s(&data("auto_mpg.csv")),
        "--target",
        "Miles_per_Gallon",
        "--model",
        "linear",
        "--out",
        s(&mpg),
    ]);
    assert!(String::from_utf8_lossy(&said.stderr).contains("warning: column `Name`"));
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
        s(&mpg),
        "--json",
    ]);
    assert_eq!(v["warnings"], serde_json::json!([]));
    let long = "x".repeat(5000);
    let mut rows = String::from("note,a,y\n");
    for i in 0..40 {
        rows.push_str(&format!(
            "{},{i},{}\n",
            if i % 4 == 0 { long.as_str() } else { "short" },
            i % 2
        ));
    }
    let v = ok_json(&[
        "train",
        "--data",
        s(&file("long.csv", &rows)),
        "--target",
        "y",
        "--out",
        s(&mpg),
        "--json",
    ]);
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("column `note` has categories of 4.9 KiB in all (the longest 4.9 KiB)"),
        "{v}"
    );
}

#[test]
fn semicolon_and_tab_separated_files_read_as_comma_separated_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pkg");
    let file = |name: &str, text: &str| file(tmp.path(), name, text);
    let train = |path: &Path, target: &str, extra: &[&str]| train_fails(path, target, &out, extra);
    // A semicolon- or tab-separated file is read as one (it said only "no column named y"),
    // and gives the model a comma-separated file does.
    let cancer = std::fs::read_to_string(data("breast_cancer.csv")).unwrap();
    let mut aucs = Vec::new();
    for (name, sep) in [("comma.csv", ","), ("semi.csv", ";"), ("tab.tsv", "\t")] {
        let path = file(name, &cancer.replace(',', sep));
        let pkg = tmp.path().join(format!("pkg-{name}"));
        let v = ok_json(&[
            "train",
            "--data",
            s(&path),
            "--target",
            "diagnosis",
            "--out",
            s(&pkg),
            "--json",
        ]);
        aucs.push(v["metrics"]["roc_auc"].as_f64().unwrap());
        let e = ok_json(&["eval", "--model", s(&pkg), "--data", s(&path), "--json"]);
        assert_eq!(e["rows"], 569);
    }
    assert!(aucs.iter().all(|a| *a == aucs[0]), "{aucs:?}");
    // A delimiter forced wrongly: the one-column header names the right one.
    let semi = tmp.path().join("semi.csv");
    let (code, err) = train(&semi, "diagnosis", &["--delimiter", ","]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("looks semicolon-separated: pass --delimiter ';'"),
        "{err}"
    );
    let out = slipway(&[
        "train",
        "--data",
        s(&semi),
        "--target",
        "diagnosis",
        "--out",
        s(&out),
        "--delimiter",
        ";;",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a delimiter"), "{err}");
}

#[test]
fn gzip_compressed_files_read_as_the_csv_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pkg");
    let train = |path: &Path, target: &str, extra: &[&str]| train_fails(path, target, &out, extra);
    // A gzip-compressed CSV reads as the CSV does, whatever its name; one that does not
    // decompress says so (it said only "invalid UTF-8").
    let gz = tmp.path().join("credit.csv.gz");
    let mut zipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(
        &mut zipped,
        &std::fs::read(data("german_credit.csv")).unwrap(),
    )
    .unwrap();
    std::fs::write(&gz, zipped.finish().unwrap()).unwrap();
    let pkg = tmp.path().join("from-gz");
    let v = ok_json(&[
        "train",
        "--data",
        s(&gz),
        "--target",
        "creditability",
        "--out",
        s(&pkg),
        "--json",
    ]);
    assert_eq!(v["rows"]["read"], 1000);
    let scores = tmp.path().join("gz-scores.csv");
    ok_json(&[
        "predict",
        "--model",
        s(&pkg),
        "--data",
        s(&gz),
        "--out",
        s(&scores),
        "--json",
    ]);
    assert_eq!(
        std::fs::read_to_string(&scores).unwrap().lines().count(),
        1001
    );
    let bad = tmp.path().join("data.csv");
    std::fs::write(&bad, [0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x80, 0x81]).unwrap();
    let (code, err) = train(&bad, "y", &[]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("gzip-compressed and does not decompress"),
        "{err}"
    );
}
