//! A package written by training, loaded back, scored through the `Model` trait and through
//! the streaming CSV path: both must agree with the network that was trained.

use std::path::Path;

use slipway_core::{CoreError, Model, Tensor, TensorData};
use slipway_learn::dataset::DatasetSpec;
use slipway_learn::package::{self, NativeModel};
use slipway_learn::predict::{PredictOptions, predict_csv};
use slipway_learn::train::{self, InputLayout, ModelKind, TrainParams, TrainSpec};

fn credit() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/german_credit.csv")
}

fn trained_package(dir: &Path) -> NativeModel {
    let spec = TrainSpec {
        data: credit(),
        test_data: None,
        dataset: DatasetSpec {
            target: "creditability".into(),
            positive_class: Some("bad".into()),
            ..DatasetSpec::default()
        },
        params: TrainParams {
            model: ModelKind::Mlp,
            hidden: vec![8],
            epochs: 20,
            ..TrainParams::default()
        },
        name: "credit".into(),
        input: InputLayout::Columns,
    };
    let trained = train::train(&spec, &mut |_| {}).unwrap();
    let written = package::write(dir, &trained.manifest, &trained.network).unwrap();
    let model = NativeModel::load(dir).unwrap();
    assert_eq!(model.manifest, written);
    assert_eq!(model.network, trained.network);
    model
}

#[test]
fn model_trait_and_csv_scoring_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let model = trained_package(tmp.path());

    // Score the first rows through the CSV path.
    let text = std::fs::read_to_string(credit()).unwrap();
    let sample: String = text.lines().take(11).map(|l| format!("{l}\n")).collect();
    let input = tmp.path().join("sample.csv");
    std::fs::write(&input, &sample).unwrap();
    let mut out = Vec::new();
    predict_csv(&model, &input, &mut out, &PredictOptions::default()).unwrap();
    let csv_probs: Vec<f64> = String::from_utf8(out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();

    // The same rows as one tensor per column.
    let mut reader = csv::Reader::from_reader(sample.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let inputs: Vec<Tensor> = model
        .signature()
        .inputs
        .iter()
        .map(|spec| {
            let j = headers.iter().position(|h| h == spec.name).unwrap();
            let data = if spec.datatype == slipway_core::DataType::Fp64 {
                TensorData::Fp64(records.iter().map(|r| r[j].parse().unwrap()).collect())
            } else {
                TensorData::Bytes(records.iter().map(|r| r[j].as_bytes().to_vec()).collect())
            };
            Tensor::vector(spec.name.clone(), data)
        })
        .collect();
    let outputs = model.infer(&inputs).unwrap();
    assert_eq!(outputs[0].name, "probability");
    let TensorData::Fp64(probs) = &outputs[0].data else {
        panic!("probability is FP64")
    };
    assert_eq!(probs.len(), 10);
    for (a, b) in probs.iter().zip(&csv_probs) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    let TensorData::Bytes(labels) = &outputs[1].data else {
        panic!("label is BYTES")
    };
    for (l, p) in labels.iter().zip(probs) {
        assert_eq!(
            l.as_slice(),
            if *p >= 0.5 {
                b"bad".as_slice()
            } else {
                b"good"
            }
        );
    }

    // A missing category ("", NA, ?) is imputed with the most frequent one, as in the CSV path.
    let categorical = model
        .signature()
        .inputs
        .iter()
        .position(|s| s.datatype == slipway_core::DataType::Bytes)
        .unwrap();
    let slipway_core::FeatureKind::Categorical { most_frequent, .. } =
        &model.manifest.features[categorical].kind
    else {
        panic!("the first BYTES input is categorical")
    };
    let mut missing = inputs.clone();
    missing[categorical].data = TensorData::Bytes(vec![b"NA".to_vec(); 10]);
    let mut imputed = inputs.clone();
    imputed[categorical].data = TensorData::Bytes(vec![most_frequent.as_bytes().to_vec(); 10]);
    assert_eq!(
        model.infer(&missing).unwrap(),
        model.infer(&imputed).unwrap()
    );

    // Bad inputs are refused with a message, never a panic.
    let err = model.infer(&inputs[1..]).unwrap_err();
    assert!(matches!(err, CoreError::InvalidInput(m) if m.contains("missing input")));
    let mut wrong_type = inputs.clone();
    let numeric = model
        .signature()
        .inputs
        .iter()
        .position(|s| s.datatype == slipway_core::DataType::Fp64)
        .unwrap();
    wrong_type[numeric].data = TensorData::Bytes(vec![b"x".to_vec(); 10]);
    assert!(
        model
            .infer(&wrong_type)
            .unwrap_err()
            .to_string()
            .contains("must be FP64")
    );
    let mut short = inputs.clone();
    short[numeric].data = TensorData::Fp64(vec![1.0; 3]);
    assert!(
        model
            .infer(&short)
            .unwrap_err()
            .to_string()
            .contains("has 3 elements")
    );
    let mut infinite = inputs;
    infinite[numeric].data = TensorData::Fp64(vec![f64::INFINITY; 10]);
    assert!(
        model
            .infer(&infinite)
            .unwrap_err()
            .to_string()
            .contains("not a finite number")
    );
}

#[test]
fn missing_or_truncated_payload_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    trained_package(tmp.path());
    let payload = tmp
        .path()
        .join(slipway_core::manifest::files::NATIVE_PAYLOAD);
    let bytes = std::fs::read(&payload).unwrap();
    std::fs::write(&payload, &bytes[..bytes.len() / 2]).unwrap();
    let err = NativeModel::load(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("is corrupt"), "{err}");
    std::fs::remove_file(&payload).unwrap();
    let err = NativeModel::load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("the payload model.safetensors is missing"),
        "{err}"
    );
    // A payload that links to a device is refused before a byte is read.
    std::os::unix::fs::symlink("/dev/zero", &payload).unwrap();
    let err = NativeModel::load(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("is not a regular file"), "{err}");
}

fn cancer() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/breast_cancer.csv")
}

fn cancer_spec(input: InputLayout) -> TrainSpec {
    TrainSpec {
        data: cancer(),
        test_data: None,
        dataset: DatasetSpec {
            target: "diagnosis".into(),
            ..DatasetSpec::default()
        },
        params: TrainParams {
            model: ModelKind::Mlp,
            hidden: vec![8],
            epochs: 5,
            ..TrainParams::default()
        },
        name: "cancer".into(),
        input,
    }
}

/// A matrix-layout package takes one FP64 `[rows, features]` tensor and answers exactly what
/// the same network answers through one tensor per column; bad matrices are refused by name.
#[test]
fn matrix_input_agrees_with_column_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut models = Vec::new();
    for (layout, dir) in [
        (InputLayout::Columns, "cols"),
        (InputLayout::Matrix, "matrix"),
    ] {
        let trained = train::train(&cancer_spec(layout), &mut |_| {}).unwrap();
        package::write(&tmp.path().join(dir), &trained.manifest, &trained.network).unwrap();
        models.push(NativeModel::load(&tmp.path().join(dir)).unwrap());
    }
    let (cols, matrix) = (&models[0], &models[1]);
    assert_eq!(
        cols.network, matrix.network,
        "the layout does not change the fit"
    );
    let width = cols.manifest.features.len();
    assert_eq!(width, 30);
    let sig = &matrix.signature().inputs;
    assert_eq!(sig.len(), 1);
    assert_eq!(sig[0].name, train::MATRIX_INPUT);
    assert_eq!(sig[0].shape, vec![-1, width as i64]);

    // Three rows from the file, one with a missing value (NaN is imputed with the median).
    let text = std::fs::read_to_string(cancer()).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let mut rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .take(3)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            cols.manifest
                .features
                .iter()
                .map(|f| {
                    let j = header.iter().position(|h| *h == f.name).unwrap();
                    cells[j].parse().unwrap()
                })
                .collect()
        })
        .collect();
    rows[1][4] = f64::NAN;
    let column_inputs: Vec<Tensor> = cols
        .manifest
        .features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            Tensor::vector(
                &f.name,
                TensorData::Fp64(rows.iter().map(|r| r[j]).collect()),
            )
        })
        .collect();
    let flat: Vec<f64> = rows.concat();
    let matrix_input = |data: TensorData, shape: Vec<usize>| {
        vec![Tensor {
            name: train::MATRIX_INPUT.into(),
            shape,
            data,
        }]
    };
    let want = cols.infer(&column_inputs).unwrap();
    let got = matrix
        .infer(&matrix_input(
            TensorData::Fp64(flat.clone()),
            vec![3, width],
        ))
        .unwrap();
    assert_eq!(got, want);

    let refused = |inputs: Vec<Tensor>, needle: &str| match matrix.infer(&inputs) {
        Err(CoreError::InvalidInput(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected InvalidInput containing {needle:?}, got {other:?}"),
    };
    refused(column_inputs, "the model takes one input, `features`");
    refused(
        matrix_input(TensorData::Fp64(flat.clone()), vec![3, width - 1]),
        "must have shape [rows, 30]",
    );
    refused(
        matrix_input(TensorData::Fp64(flat[..width].to_vec()), vec![3, width]),
        "must have shape [rows, 30]",
    );
    refused(
        matrix_input(
            TensorData::Fp32(flat.iter().map(|&v| v as f32).collect()),
            vec![3, width],
        ),
        "must be FP64, got FP32",
    );
    let mut infinite = flat;
    infinite[width + 2] = f64::INFINITY;
    refused(
        matrix_input(TensorData::Fp64(infinite), vec![3, width]),
        "not a finite number at row 1, column 2",
    );
}

/// A matrix holds numbers only: training one over categorical columns is refused up front,
/// naming them.
#[test]
fn matrix_input_refuses_categorical_features() {
    let mut spec = cancer_spec(InputLayout::Matrix);
    spec.data = credit();
    spec.dataset.target = "creditability".into();
    let err = train::train(&spec, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("a matrix input holds numbers only"), "{err}");
    assert!(err.contains("housing"), "{err}");
}

/// A manifest whose signature does not fit its features (a hand-edited width, a matrix over a
/// renamed input) is refused at load, not served with columns silently left at zero.
#[test]
fn a_signature_that_does_not_fit_the_features_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let trained = train::train(&cancer_spec(InputLayout::Matrix), &mut |_| {}).unwrap();
    package::write(tmp.path(), &trained.manifest, &trained.network).unwrap();
    let path = tmp.path().join("slipway.json");
    let text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in [("30", "29"), ("\"features\"", "\"x\"")] {
        let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
        let input = &mut manifest["signature"]["inputs"][0];
        if from == "30" {
            input["shape"] = serde_json::json!([-1, 29]);
        } else {
            input["name"] = serde_json::json!("x");
        }
        std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let err = NativeModel::load(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("do not match its 30 features"),
            "{from}→{to}: {err}"
        );
    }
    std::fs::write(&path, text).unwrap();
    NativeModel::load(tmp.path()).unwrap();
}
