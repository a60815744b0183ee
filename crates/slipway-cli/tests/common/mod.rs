//! Helpers shared by the CLI test binaries: run `slipway` as a process, find the bundled data.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[allow(unused_imports)] // each test binary uses its own share of these
pub use slipway_testkit::{credit_package, data};

/// Runs `slipway` with `args`.
pub fn slipway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .output()
        .expect("slipway runs")
}

/// Runs a command that must succeed and print one JSON value.
pub fn ok_json(args: &[&str]) -> Value {
    let out = slipway(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs a command that must fail without a panic; returns its exit code and stderr.
pub fn fails(args: &[&str]) -> (i32, String) {
    let out = slipway(args);
    assert!(!out.status.success(), "{args:?} should fail but succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

/// A path as `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An HTTP/1.1 request written as it is, and the whole answer.
pub fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// Starts `slipway serve ARGS` (stderr piped or dropped) and returns it with the address it
/// printed on its first line.
pub fn start_serve(args: &[&str], stderr: Stdio) -> (std::process::Child, String) {
    let (child, first) = start_serve_line(args, stderr);
    (child, http_address(&first))
}

/// The REST address in the server's first line.
pub fn http_address(first: &str) -> String {
    first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string()
}

/// Starts `slipway serve ARGS` and returns it with the first line it printed.
pub fn start_serve_line(args: &[&str], stderr: Stdio) -> (std::process::Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipway"));
    command.arg("serve").args(args);
    spawn_server(command, stderr)
}

/// Spawns a server command and returns it with the first line it printed.
pub fn spawn_server(mut command: Command, stderr: Stdio) -> (std::process::Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // Keep reading stdout: a closed pipe would make the server's next line fail.
    std::thread::spawn(move || lines.for_each(drop));
    (child, first)
}

/// Sends SIGTERM and requires a clean exit.
pub fn stop(child: &mut std::process::Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
