//! `slipway serve` as a process: it prints where it listens, answers over HTTP, refuses to
//! start with nothing to serve, and stops cleanly on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{fails, s};

fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_a_package_and_stops_on_sigterm() {
    let pkg = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/native/native_logistic_credit");
    let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["serve", s(&pkg), "--http", "127.0.0.1:0", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();

    let live = http(
        &addr,
        "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    assert!(live.ends_with(r#"{"live":true}"#), "{live}");
    let meta = http(
        &addr,
        "GET /v2/models/german_credit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(meta.contains(r#""platform":"slipway_native""#), "{meta}");
    // No Content-Type at all, as tritonclient's gevent client sends it.
    let body = r#"{"instances":[{"age_in_years":41,"duration_in_month":12,"credit_amount":2500}]}"#;
    let req = format!(
        "POST /v1/models/german_credit:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = http(&addr, &req);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"predictions\""),
        "{answer}"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn nothing_to_serve_is_a_usage_error() {
    let (code, err) = fails(&["serve"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--model"), "{err}");
    let (code, err) = fails(&[
        "serve",
        "--model",
        "credit@production",
        "--registry",
        "/nonexistent/registry",
    ]);
    assert_ne!(code, 0, "{err}");
}
