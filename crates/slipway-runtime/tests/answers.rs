//! The one answer shape: `tabular::read_scores` reads any package's scores, or says why it
//! cannot, and `example` builds requests from what a package knows of its columns.

use std::path::PathBuf;

use slipway_core::{Manifest, Task, Tensor, TensorData};
use slipway_runtime::tabular::read_scores;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The cancer graph (scikit-learn's gradient boosting: `label` and a two-column
/// `probabilities`), packaged as `slipway import` packages it.
fn cancer() -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let source = repo().join("conformance/cases/sk_gradient_boosting.onnx");
    let options = slipway_runtime::OnnxOptions {
        name: "cancer".into(),
        source: source.clone(),
        features_from: Some(repo().join("data/breast_cancer.csv")),
        target: Some("diagnosis".into()),
        ..slipway_runtime::OnnxOptions::default()
    };
    let packaged =
        slipway_runtime::package_onnx(&std::fs::read(&source).unwrap(), &options, dir.path())
            .unwrap();
    (dir, packaged.manifest)
}

fn scores(name: &str, shape: Vec<usize>, data: TensorData) -> Vec<Tensor> {
    vec![Tensor {
        name: name.into(),
        shape,
        data,
    }]
}

#[test]
fn scores_read_in_the_task_shape_or_say_why_not() {
    let (_dir, m) = cancer();
    assert_eq!(m.task, Task::BinaryClassification);
    assert_eq!(m.scores_output(), "probabilities");
    // Two columns: the second is the positive class's probability.
    let two = scores(
        "probabilities",
        vec![2, 2],
        TensorData::Fp32(vec![0.9, 0.1, 0.25, 0.75]),
    );
    let got = read_scores(&m, &two, 2).unwrap();
    assert_eq!(got.shape(), [2, 1]);
    assert_eq!(got.column(0).to_vec(), vec![0.1f32 as f64, 0.75]);
    assert_eq!(m.label(&[0.75], m.threshold()), m.target.classes[1]);
    assert_eq!(m.label(&[0.1], m.threshold()), m.target.classes[0]);
    // No rows: an empty answer, not an error.
    assert_eq!(read_scores(&m, &[], 0).unwrap().shape(), [0, 1]);
    for (outputs, rows, says) in [
        (Vec::new(), 1, "no output `probabilities`"),
        (
            scores("probabilities", vec![1, 3], TensorData::Fp32(vec![0.1; 3])),
            1,
            "has 3 columns, which does not fit",
        ),
        (
            scores("probabilities", vec![3], TensorData::Fp32(vec![0.1; 3])),
            2,
            "not a whole number per row",
        ),
        (
            scores(
                "probabilities",
                vec![1],
                TensorData::Bytes(vec![b"x".to_vec()]),
            ),
            1,
            "not numeric",
        ),
    ] {
        let err = read_scores(&m, &outputs, rows).unwrap_err();
        assert!(err.contains(says), "{says}: {err}");
    }
}

#[test]
fn an_imported_graph_without_a_profile_gets_an_example_of_its_layout() {
    let (_dir, m) = cancer();
    let ex = slipway_runtime::example::example(&m);
    assert_eq!(ex.columns.len(), 30);
    assert_eq!(ex.columns[0].name, "mean_radius");
    assert_eq!(ex.columns[0].missing, None);
    assert_eq!(ex.v2["inputs"][0]["name"], "X");
    assert_eq!(ex.v2["inputs"][0]["datatype"], "FP32");
    assert_eq!(ex.v2["inputs"][0]["shape"], serde_json::json!([1, 30]));
    assert_eq!(ex.v2["inputs"][0]["data"].as_array().unwrap().len(), 30);
    assert_eq!(ex.v1["instances"][0]["mean_radius"], 0.0);
}
