//! Fixtures and helpers that Slipway's tests share, so that no test crate keeps its own copy:
//! where the bundled data and packages are, the credit fixture's rows as tensors, an ONNX
//! package made the way `slipway import` makes one, and a model slowed down on purpose.
//!
//! A dev-dependency only; nothing here is part of Slipway.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use slipway_core::{CoreError, Model, Signature, Tensor, TensorData};

/// The workspace's root folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A bundled data set, `data/NAME`.
pub fn data(name: &str) -> PathBuf {
    repo().join("data").join(name)
}

/// A conformance case, `conformance/cases/NAME` (an ONNX graph or its JSON fixture).
pub fn case(name: &str) -> PathBuf {
    repo().join("conformance/cases").join(name)
}

/// A native conformance package folder, `conformance/native/NAME`.
pub fn native_package(name: &str) -> PathBuf {
    repo().join("conformance/native").join(name)
}

/// The native logistic credit package.
pub fn credit_package() -> PathBuf {
    native_package("native_logistic_credit")
}

/// The credit package, loaded.
pub fn load_credit() -> slipway_runtime::Loaded {
    slipway_runtime::load(&credit_package()).expect("the credit package loads")
}

/// The credit fixture's rows, one tensor per input column. Missing numbers (JSON `null`) are
/// given as 1, because JSON has no NaN and the wire tests send these rows as JSON too.
pub fn credit_tensors() -> Vec<Tensor> {
    credit_columns()
        .into_iter()
        .map(|(name, values)| Tensor::vector(&name, values))
        .collect()
}

/// Row `i` of the credit fixture as a one-row request. Past the fixture's last row the rows
/// repeat with every number raised by one per round, so that each `i` has its own answer.
pub fn credit_row(i: usize) -> Vec<Tensor> {
    credit_columns()
        .into_iter()
        .map(|(name, values)| {
            let one = match values {
                TensorData::Fp64(v) => {
                    TensorData::Fp64(vec![v[i % v.len()] + (i / v.len()) as f64])
                }
                TensorData::Bytes(v) => TensorData::Bytes(vec![v[i % v.len()].clone()]),
                other @ (TensorData::Bool(_) | TensorData::Int64(_) | TensorData::Fp32(_)) => {
                    panic!("the credit fixture has no {other:?} column")
                }
            };
            Tensor::vector(&name, one)
        })
        .collect()
}

fn credit_columns() -> Vec<(String, TensorData)> {
    let fixture: Json =
        serde_json::from_slice(&std::fs::read(case("native_logistic_credit.json")).unwrap())
            .unwrap();
    fixture["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|input| {
            let values = input["data"].as_array().unwrap();
            let data = if input["datatype"] == "FP64" {
                TensorData::Fp64(values.iter().map(|x| x.as_f64().unwrap_or(1.0)).collect())
            } else {
                TensorData::Bytes(
                    values
                        .iter()
                        .map(|x| x.as_str().unwrap().as_bytes().to_vec())
                        .collect(),
                )
            };
            (input["name"].as_str().unwrap().to_string(), data)
        })
        .collect()
}

/// The breast-cancer gradient-boosting graph of the conformance suite, packaged into
/// `dir/cancer` by the same library code as `slipway import` (30 FP32 features, binary).
pub fn onnx_package(dir: &Path) -> PathBuf {
    let source = case("sk_gradient_boosting.onnx");
    let bytes = std::fs::read(&source).unwrap();
    let pkg = dir.join("cancer");
    std::fs::create_dir_all(&pkg).unwrap();
    let options = slipway_runtime::OnnxOptions {
        name: "cancer".into(),
        source,
        features_from: Some(data("breast_cancer.csv")),
        target: Some("diagnosis".into()),
        ..slipway_runtime::OnnxOptions::default()
    };
    slipway_runtime::package_onnx(&bytes, &options, &pkg).expect("the cancer graph packages");
    pkg
}

/// A model that sleeps `delay` before every batch, then answers as `inner` does (a model
/// slower than its deadline, or one whose requests pile up).
pub struct Slow {
    pub inner: Arc<dyn Model>,
    pub delay: Duration,
}

impl Model for Slow {
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, CoreError> {
        std::thread::sleep(self.delay);
        self.inner.infer(inputs)
    }
}

/// An API key of `role` over `models` (all when empty), as `slipway keys create` makes one,
/// with its token.
pub fn api_key(
    role: slipway_registry::Role,
    models: &[&str],
) -> (slipway_registry::KeyRecord, String) {
    let (id, secret, token) = slipway_registry::keys::new_token().unwrap();
    let record = slipway_registry::KeyRecord {
        id,
        name: format!("{role}-key"),
        role,
        models: models.iter().map(|m| m.to_string()).collect(),
        secret_sha256: slipway_registry::keys::secret_sha256(&secret),
        created_at: String::new(),
        created_by: "test".into(),
        expires_at: None,
        revoked_at: None,
        rate: None,
        rows_rate: None,
    };
    (record, token)
}
