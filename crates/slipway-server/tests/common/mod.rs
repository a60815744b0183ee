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

/// The real server on ephemeral ports, REST and gRPC, serving the credit model (native, version
/// 3) and the cancer model (ONNX, version 1); it stops when dropped.
pub struct Server {
    /// `http://host:port` of REST and of gRPC.
    pub http: String,
    pub grpc: String,
    pub engine: Arc<slipway_engine::Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(slipway_engine::Engine::new(2));
    let credit =
        slipway_runtime::load(&repo().join("conformance/native/native_logistic_credit")).unwrap();
    engine.add("credit", "3", credit);
    engine.add(
        "cancer",
        "1",
        slipway_runtime::load(&onnx_package(dir.path())).unwrap(),
    );
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_url = format!("http://{}", http.local_addr().unwrap());
    let grpc_url = format!("http://{}", grpc.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(slipway_server::serve(
        slipway_server::ServerConfig {
            http,
            grpc: Some(grpc),
            drain: Duration::from_secs(5),
            v1_unknown_columns: slipway_server::UnknownColumns::default(),
        },
        Arc::clone(&engine),
        async move {
            let _ = rx.await;
        },
    ));
    Server {
        http: http_url,
        grpc: grpc_url,
        engine,
        stop: Some(tx),
        _dir: dir,
    }
}
