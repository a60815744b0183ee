//! Helpers the server's integration tests share.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use slipway_core::{CoreError, Model, Signature, Tensor};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An ONNX package made from a conformance model (as `slipway import` writes one).
pub fn onnx_package(dir: &Path) -> PathBuf {
    use sha2::Digest;
    let bytes = std::fs::read(repo().join("conformance/cases/sk_gradient_boosting.onnx")).unwrap();
    let pkg = dir.join("cancer");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("model.onnx"), &bytes).unwrap();
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let model = slipway_runtime::OnnxModel::from_bytes(&bytes, slipway_runtime::EngineChoice::Auto)
        .unwrap();
    let manifest = json!({
        "format_version": 1, "name": "cancer", "task": "binary_classification", "framework": "onnx",
        "target": {"name": "diagnosis", "classes": ["benign", "malignant"], "positive_class": "malignant", "threshold": 0.5},
        "signature": model.signature(),
        "features": [],
        "model": {"kind": "onnx", "layers": [], "onnx": {"features": (0..30).map(|i| format!("f{i}")).collect::<Vec<_>>(), "input": "X", "label": "label", "scores": "probabilities"}},
        "payload": {"file": "model.onnx", "sha256": digest},
        "metrics": {}, "params": null,
        "lineage": {"dataset_sha256": "", "dataset": "", "rows": 0, "rows_dropped": 0, "split": [0, 0, 0], "seed": 0, "slipway_version": "0", "created_at": ""}
    });
    std::fs::write(
        pkg.join("slipway.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    pkg
}

/// The credit model, taking `delay` longer per batch (a model slower than its deadline).
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
