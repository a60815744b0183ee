//! The registry through the `slipway` binary: many processes at once, processes killed midway,
//! and every kind of bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{data, fails, ok_json, s, slipway};
use serde_json::Value;

fn package(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    ok_json(&[
        "train",
        "--data",
        s(&data("german_credit.csv")),
        "--target",
        "creditability",
        "--positive-class",
        "bad",
        "--out",
        s(&out),
        "--json",
    ]);
    out
}

/// A copy of `pkg` that differs in its decision threshold: another package (the registry reuses
/// the version of a package it already has), without training again.
fn variant(pkg: &Path, i: u32) -> PathBuf {
    let out = pkg.with_file_name(format!("variant-{i}"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(pkg.join("model.safetensors"), out.join("model.safetensors")).unwrap();
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(pkg.join("slipway.json")).unwrap()).unwrap();
    m["target"]["threshold"] = (0.3 + f64::from(i) * 0.01).into();
    std::fs::write(out.join("slipway.json"), m.to_string()).unwrap();
    out
}

fn versions(registry: &Path) -> Vec<u64> {
    let v = ok_json(&[
        "models",
        "show",
        "credit",
        "--registry",
        s(registry),
        "--json",
    ]);
    v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect()
}

#[test]
fn eight_processes_register_at_once_and_each_gets_its_own_version() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = package(tmp.path(), "pkg");
    let registry = tmp.path().join("reg");
    // Create the registry first, so that the race is on registration, not on creation.
    ok_json(&[
        "register",
        s(&pkg),
        "--name",
        "warmup",
        "--registry",
        s(&registry),
        "--json",
    ]);
    let packages: Vec<PathBuf> = (0..8).map(|i| variant(&pkg, i)).collect();
    let children: Vec<_> = packages
        .iter()
        .map(|p| {
            Command::new(env!("CARGO_BIN_EXE_slipway"))
                .args([
                    "register",
                    s(p),
                    "--name",
                    "credit",
                    "--registry",
                    s(&registry),
                    "--json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut got: Vec<u64> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"]
                .as_u64()
                .unwrap()
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (1..=8).collect::<Vec<_>>());
    assert_eq!(versions(&registry), (1..=8).collect::<Vec<_>>());
    let verify = ok_json(&["registry", "verify", "--registry", s(&registry), "--json"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn registrations_killed_at_any_point_leave_the_registry_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = package(tmp.path(), "pkg");
    let registry = tmp.path().join("reg");
    ok_json(&[
        "register",
        s(&pkg),
        "--name",
        "warmup",
        "--registry",
        s(&registry),
        "--json",
    ]);
    for i in 0..16u64 {
        let p = variant(&pkg, i as u32);
        let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args([
                "register",
                s(&p),
                "--name",
                "credit",
                "--alias",
                "staging",
                "--registry",
                s(&registry),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kill over the whole registration (start-up, blobs, transaction).
        std::thread::sleep(std::time::Duration::from_micros(i * 1_500));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let verify = slipway(&["registry", "verify", "--registry", s(&registry), "--json"]);
        assert!(
            verify.status.success(),
            "after kill {i}: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
    // Versions exist whole or not at all: numbered without gaps, each loadable.
    let list = ok_json(&["models", "list", "--registry", s(&registry), "--json"]);
    if let Some(model) = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "credit")
    {
        let n = model["versions"].as_u64().unwrap();
        assert_eq!(versions(&registry), (1..=n).collect::<Vec<_>>());
        let eval = ok_json(&[
            "eval",
            "--model",
            &format!("credit:{n}"),
            "--registry",
            s(&registry),
            "--data",
            s(&data("german_credit.csv")),
            "--json",
        ]);
        assert_eq!(eval["rows"], 1000);
    }
}

#[test]
fn promotion_lifecycle_and_bad_input_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = package(tmp.path(), "pkg");
    let registry = tmp.path().join("reg");
    let reg = s(&registry);
    ok_json(&[
        "register",
        s(&pkg),
        "--name",
        "credit",
        "--alias",
        "staging",
        "--tag",
        "team=risk",
        "--registry",
        reg,
        "--json",
    ]);
    // The same package again (a demo rerun, a retried pipeline step) is the version there is.
    let again = ok_json(&[
        "register",
        s(&pkg),
        "--name",
        "credit",
        "--registry",
        reg,
        "--json",
    ]);
    assert_eq!(
        (&again["version"], &again["reused"]),
        (&Value::from(1), &Value::from(true))
    );
    let said = slipway(&["register", s(&pkg), "--name", "credit", "--registry", reg]);
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.starts_with("already registered as credit:1"), "{said}");
    let second = ok_json(&[
        "register",
        s(&variant(&pkg, 1)),
        "--name",
        "credit",
        "--registry",
        reg,
        "--json",
    ]);
    assert_eq!(
        (&second["version"], &second["reused"]),
        (&Value::from(2), &Value::from(false))
    );
    // A gate that fails exits 3 with the table; nothing moves. A gate on a metric Slipway never
    // records is a mistake in the command, not a failed model: exit 2, naming the metrics.
    for (gate, exit, says) in [
        ("roc_auc>=0.99", 3, &["roc_auc >= 0.99", "FAIL"]),
        ("auc>=0.7", 2, &["`auc`", "roc_auc, roc_auc_ovr"]),
    ] {
        let (code, err) = fails(&[
            "promote",
            "credit:2",
            "--to",
            "production",
            "--require",
            gate,
            "--registry",
            reg,
        ]);
        assert_eq!(code, exit, "{gate}: {err}");
        assert!(says.iter().all(|w| err.contains(w)), "{gate}: {err}");
    }
    // Gates stored for the alias apply to every promotion.
    let g = ok_json(&[
        "models",
        "gates",
        "credit",
        "--alias",
        "production",
        "--require",
        "roc_auc>=0.95",
        "--registry",
        reg,
        "--json",
    ]);
    assert_eq!(g["gates"][0], "roc_auc>=0.95");
    let promote_1 = [
        "promote",
        "credit:1",
        "--to",
        "production",
        "--registry",
        reg,
    ];
    let (code, err) = fails(&promote_1);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("roc_auc >= 0.95"), "{err}");
    ok_json(&[
        "models",
        "gates",
        "credit",
        "--alias",
        "production",
        "--require",
        "roc_auc>=0.6",
        "--registry",
        reg,
        "--json",
    ]);
    let v = ok_json(&[
        "promote",
        "credit:1",
        "--to",
        "production",
        "--require",
        "roc_auc>=0.7",
        "--registry",
        reg,
        "--json",
    ]);
    assert_eq!(
        v["checks"].as_array().unwrap().len(),
        2,
        "the stored gate and the given one"
    );
    assert_eq!(v["to"], 1);
    // Promoting the version the alias already points at moves nothing and records nothing.
    let again = ok_json(&[&promote_1[..], &["--json"]].concat());
    assert_eq!(
        (&again["from"], &again["to"]),
        (&Value::from(1), &Value::from(1))
    );
    let said = String::from_utf8_lossy(&slipway(&promote_1).stdout).into_owned();
    assert!(
        said.contains("already points at 1; nothing moved"),
        "{said}"
    );
    // Champion/challenger on labelled data: the same model does not beat itself.
    let (code, err) = fails(&[
        "promote",
        "credit:2",
        "--to",
        "production",
        "--data",
        s(&data("german_credit.csv")),
        "--must-beat",
        "roc_auc",
        "--registry",
        reg,
    ]);
    assert_eq!(code, 3);
    assert!(err.contains("beats credit:1"), "{err}");
    let v = ok_json(&[
        "promote",
        "credit:2",
        "--to",
        "production",
        "--reason",
        "retrained",
        "--registry",
        reg,
        "--json",
    ]);
    assert_eq!((v["from"].as_u64(), v["to"].as_u64()), (Some(1), Some(2)));
    let v = ok_json(&[
        "rollback",
        "credit",
        "--alias",
        "production",
        "--registry",
        reg,
        "--json",
    ]);
    assert_eq!((v["from"].as_u64(), v["to"].as_u64()), (Some(2), Some(1)));
    let show = ok_json(&[
        "models",
        "show",
        "credit@production",
        "--registry",
        reg,
        "--json",
    ]);
    assert_eq!(show["version"], 1);
    assert_eq!(show["tags"]["team"], "risk");
    assert!(show["metrics"]["roc_auc"].is_f64() && show["lineage"]["dataset_sha256"].is_string());
    let history = ok_json(&["models", "history", "credit", "--registry", reg, "--json"]);
    assert_eq!(history["history"].as_array().unwrap().len(), 4);
    let g = ok_json(&[
        "models",
        "gates",
        "credit",
        "--alias",
        "production",
        "--clear",
        "--registry",
        reg,
        "--json",
    ]);
    assert!(g["gates"].as_array().unwrap().is_empty());
    // Predict with a registry reference.
    let scores = tmp.path().join("scores.csv");
    let v = ok_json(&[
        "predict",
        "--model",
        "credit@production",
        "--registry",
        reg,
        "--data",
        s(&data("german_credit.csv")),
        "--out",
        s(&scores),
        "--json",
    ]);
    assert_eq!(v["rows"], 1000);

    let audit_len = || {
        ok_json(&["registry", "audit", "--registry", reg, "--json"])["audit"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = audit_len();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["models", "show", "nope"], 66, "no model named `nope`"),
        (vec!["models", "show", "credit:9"], 66, "has no version 9"),
        (
            vec!["models", "show", "credit@canary"],
            66,
            "has no alias `canary`",
        ),
        (
            vec!["models", "show", "credit@@x"],
            2,
            "is not a model reference",
        ),
        (
            vec!["promote", "credit@@x", "--to", "production"],
            2,
            "is not a model reference",
        ),
        (vec!["models", "delete", "credit:1"], 65, "@production"),
        (
            vec!["rollback", "credit", "--alias", "canary"],
            66,
            "has no alias `canary`",
        ),
        (
            vec!["register", s(tmp.path()), "--name", "credit"],
            65,
            "has no slipway.json",
        ),
        (
            vec!["register", s(&pkg), "--name", "credit@x"],
            2,
            "not a valid model name",
        ),
    ];
    for (mut args, code, message) in cases {
        args.extend(["--registry", reg]);
        let (got, err) = fails(&args);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    assert_eq!(audit_len(), before, "failed commands change nothing");

    // A registry path that is a file.
    let file = tmp.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let (code, err) = fails(&["models", "list", "--registry", s(&file)]);
    assert_eq!(code, 2);
    assert!(err.contains("is a file"), "{err}");

    // Tampering is found by verify (exit 65) and named.
    let blobs = registry.join("blobs/sha256");
    let prefix = std::fs::read_dir(&blobs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let blob = std::fs::read_dir(&prefix)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&blob, b"tampered").unwrap();
    let out = slipway(&["registry", "verify", "--registry", reg]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is corrupt"));
}

#[test]
fn export_and_import_move_a_version_between_registries() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = package(tmp.path(), "pkg");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok_json(&[
        "register",
        s(&pkg),
        "--name",
        "credit",
        "--tag",
        "team=risk",
        "--registry",
        s(&a),
        "--json",
    ]);
    let tar = tmp.path().join("credit-1.tar");
    let exported = ok_json(&[
        "export",
        "credit:1",
        "--out",
        s(&tar),
        "--registry",
        s(&a),
        "--json",
    ]);
    let imported = ok_json(&[
        "import",
        s(&tar),
        "--alias",
        "staging",
        "--registry",
        s(&b),
        "--json",
    ]);
    assert_eq!(
        imported["digest"], exported["digest"],
        "the same content, the same digest"
    );
    assert_eq!(imported["tags"]["team"], "risk");
    assert_eq!(imported["reused"], false);
    let audit = ok_json(&["registry", "audit", "--registry", s(&b), "--json"]);
    assert_eq!(audit["audit"][0]["action"], "import");
    // The same tar again is the version it already made.
    let again = ok_json(&["import", s(&tar), "--registry", s(&b), "--json"]);
    assert_eq!(
        (&again["version"], &again["reused"]),
        (&imported["version"], &Value::from(true))
    );
    ok_json(&[
        "eval",
        "--model",
        "credit@staging",
        "--registry",
        s(&b),
        "--data",
        s(&data("german_credit.csv")),
        "--json",
    ]);

    // A tar whose payload was altered is refused and registers nothing.
    let mut bytes = std::fs::read(&tar).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xFF;
    let bad = tmp.path().join("bad.tar");
    std::fs::write(&bad, bytes).unwrap();
    let c = tmp.path().join("c");
    let (code, err) = fails(&["import", s(&bad), "--registry", s(&c)]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("does not match its recorded digest") || err.contains("not a tar"),
        "{err}"
    );
    let (code, err) = fails(&["models", "list", "--registry", s(&c)]);
    assert_eq!(code, 66, "nothing was created: {err}");
    assert!(err.contains("no registry at"), "{err}");
    let (code, _) = fails(&["import", s(&pkg.join("slipway.json")), "--registry", s(&c)]);
    assert_eq!(code, 2);
}

/// With no user name in the environment (a container, a CI job), the audit names the numeric
/// user and the host rather than "unknown"; `rollback --reason` is kept beside the move.
#[test]
fn who_acted_is_recorded_without_a_user_name_and_rollbacks_keep_their_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = package(tmp.path(), "pkg");
    let reg = tmp.path().join("reg");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(args)
            .arg("--registry")
            .arg(&reg)
            .env_remove("SLIPWAY_USER")
            .env_remove("USER")
            .env_remove("LOGNAME")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run(&[
        "register",
        s(&pkg),
        "--name",
        "credit",
        "--alias",
        "production",
    ]);
    let second = variant(&pkg, 1);
    run(&["register", s(&second), "--name", "credit"]);
    run(&["promote", "credit:2", "--to", "production"]);
    run(&[
        "rollback",
        "credit",
        "--alias",
        "production",
        "--reason",
        "INC-1234: approvals fell",
    ]);
    let out = run(&["models", "history", "credit", "--json"]);
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let moves = history["history"].as_array().unwrap();
    let last = moves.last().unwrap();
    assert_eq!(last["reason"], "rollback from 2: INC-1234: approvals fell");
    for m in moves {
        let by = m["by"].as_str().unwrap();
        assert!(by.starts_with("uid ") && by.contains('@'), "{m}");
    }
}
