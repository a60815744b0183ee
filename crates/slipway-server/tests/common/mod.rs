//! Helpers the server's integration tests share.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

#[allow(unused_imports)] // each test binary uses its own share of these
pub use slipway_testkit::{Slow, onnx_package, repo};

/// `GET url`: the status and the body as JSON (`null` if it is not JSON).
pub async fn get(url: &str) -> (u16, Json) {
    let r = reqwest::Client::new().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Json::Null))
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
    start_with(Default::default()).await
}

/// As [`start`], with these API-key checks.
pub async fn start_with(auth: Arc<slipway_server::auth::Auth>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(slipway_engine::Engine::new(2));
    engine.add("credit", "3", slipway_testkit::load_credit());
    engine.add(
        "cancer",
        "1",
        slipway_runtime::load(&onnx_package(dir.path())).unwrap(),
    );
    let http = slipway_server::listen("127.0.0.1:0").await.unwrap();
    let grpc = slipway_server::listen("127.0.0.1:0").await.unwrap();
    let http_url = format!("http://{}", http.local_addr().unwrap());
    let grpc_url = format!("http://{}", grpc.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(slipway_server::serve(
        slipway_server::ServerConfig {
            http,
            grpc: Some(grpc),
            drain: Duration::from_secs(5),
            v1_unknown_columns: slipway_server::UnknownColumns::default(),
            auth,
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
