//! Real third-party clients against the server over the wire: Triton's `tritonclient` (HTTP
//! and gRPC) and KServe's `InferenceRESTClient` / `InferenceGRPCClient`, installed on first use
//! into a virtual environment under the target folder (`tests/clients/requirements.txt`; needs
//! `python3` and the package index). Each script calls every endpoint and exits non-zero on a
//! mismatch.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use slipway_engine::Engine;

mod common;
use common::onnx_package;

/// The clients' Python, creating its virtual environment when needed (once: the tests that
/// call this run in parallel).
fn python() -> PathBuf {
    static VENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = VENV
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clients-venv");
    let py = venv.join("bin/python");
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/requirements.txt");
    let stamp = venv.join(".requirements");
    let want = std::fs::read_to_string(&requirements).unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status();
        assert!(
            matches!(made, Ok(s) if s.success()),
            "python3 -m venv failed: the client tests need python3 with venv"
        );
        let pip = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements)
            .status()
            .unwrap();
        assert!(
            pip.success(),
            "pip could not install {}",
            requirements.display()
        );
        std::fs::write(&stamp, want).unwrap();
    }
    py
}

/// Serves `credit` (native, version 1) and `cancer` (ONNX) over REST and gRPC, with a loader
/// for the repository extension, runs `script HTTP_ADDR GRPC_ADDR` and requires it to pass.
async fn run_client(script: &str) {
    run_client_with(script, Default::default(), Vec::new()).await;
}

/// As [`run_client`], with these key checks and more arguments for the script.
async fn run_client_with(script: &str, auth: Arc<slipway_server::auth::Auth>, extra: Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let credit_dir = slipway_testkit::credit_package();
    let cancer_dir = onnx_package(dir.path());
    let engine = Arc::new(Engine::new(2));
    // Loaded through the repository, so that unload and load work as `slipway serve`'s do.
    engine
        .repository()
        .add("credit", slipway_engine::Source::Folder(credit_dir));
    engine
        .repository()
        .add("cancer", slipway_engine::Source::Folder(cancer_dir));
    engine.repository().sync(&engine);
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = [
        http.local_addr().unwrap().to_string(),
        grpc.local_addr().unwrap().to_string(),
    ];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(slipway_server::serve(
        slipway_server::ServerConfig {
            http,
            grpc: Some(grpc),
            drain: std::time::Duration::from_secs(5),
            v1_unknown_columns: slipway_server::UnknownColumns::default(),
            auth,
        },
        Arc::clone(&engine),
        async move {
            let _ = stopped.await;
        },
    ));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(&path)
            .args(addrs)
            .args(extra)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = stop.send(());
    assert_eq!(
        server.await.unwrap().unwrap(),
        slipway_server::Stopped::Drained,
        "requests were left in flight"
    );
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_http_speaks_to_slipway() {
    run_client("triton_http.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_grpc_speaks_to_slipway() {
    run_client("triton_grpc.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kserve_clients_speak_to_slipway() {
    run_client("kserve_clients.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_carries_api_keys_in_headers_on_http_and_grpc() {
    let (infer, infer_token) = slipway_testkit::api_key(slipway_registry::Role::Infer, &[]);
    let (monitor, monitor_token) = slipway_testkit::api_key(slipway_registry::Role::Monitor, &[]);
    let auth = Arc::new(slipway_server::auth::Auth::on(vec![infer, monitor]));
    run_client_with("triton_keys.py", auth, vec![infer_token, monitor_token]).await;
}
