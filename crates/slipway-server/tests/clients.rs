//! Real third-party clients against the server over the wire: Triton's `tritonclient` (HTTP),
//! installed on first use into a virtual environment under the target folder
//! (`tests/clients/requirements.txt`; needs `python3` and the package index).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use slipway_engine::Engine;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The clients' Python, creating its virtual environment when needed.
fn python() -> PathBuf {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_http_speaks_to_slipway() {
    let engine = Arc::new(Engine::new(2));
    engine.add(
        "credit",
        "1",
        slipway_runtime::load(&repo().join("conformance/native/native_logistic_credit")).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(slipway_server::serve(
        listener,
        Arc::clone(&engine),
        async move {
            let _ = stopped.await;
        },
    ));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/triton_http.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .args([addr.as_str(), "credit"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "tritonclient failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
}
