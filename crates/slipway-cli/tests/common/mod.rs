//! Helpers shared by the CLI test binaries: run `slipway` as a process, find the bundled data.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

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
