//! The registry on a real SQLite file and blob folder in a temporary directory.

use std::path::{Path, PathBuf};

use slipway_learn::dataset::DatasetSpec;
use slipway_learn::train::{self, InputLayout, ModelKind, TrainParams, TrainSpec};
use slipway_registry::{
    Gate, Promotion, Reference, RegisterOptions, Registry, RegistryError, Selector, sha256_hex,
};

fn package(dir: &Path, seed: u64) -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/breast_cancer.csv");
    let spec = TrainSpec {
        data,
        test_data: None,
        dataset: DatasetSpec {
            target: "diagnosis".into(),
            ..DatasetSpec::default()
        },
        params: TrainParams {
            model: ModelKind::Logistic,
            seed,
            ..TrainParams::default()
        },
        name: "bc".into(),
        input: InputLayout::Columns,
    };
    let trained = train::train(&spec, &mut |_| {}).unwrap();
    let out = dir.join(format!("pkg-{seed}"));
    slipway_learn::package::write(&out, &trained.manifest, &trained.network).unwrap();
    out
}

fn resolve(reg: &Registry, r: &str) -> Result<u32, RegistryError> {
    reg.resolve(&r.parse::<Reference>().unwrap())
        .map(|v| v.version)
}

fn opts(name: &str, alias: Option<&str>) -> RegisterOptions {
    RegisterOptions {
        name: name.into(),
        alias: alias.map(Into::into),
        by: "tester".into(),
        ..RegisterOptions::default()
    }
}

fn promotion(version: u32, alias: &str, gates: &[&str]) -> Promotion {
    Promotion {
        model: "bc".into(),
        version,
        alias: alias.into(),
        gates: gates.iter().map(|g| g.parse().unwrap()).collect(),
        by: "tester".into(),
        ..Promotion::default()
    }
}

#[test]
fn register_promote_rollback_delete_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("reg");
    let mut reg = Registry::open(&root).unwrap();
    let p1 = package(tmp.path(), 1);
    let p2 = package(tmp.path(), 2);
    let v1 = reg
        .register(&p1, &opts("bc", Some("staging")))
        .unwrap()
        .record;
    let v2 = reg.register(&p2, &opts("bc", None)).unwrap().record;
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v1.files.len(), 2);
    assert!(v1.manifest["metrics"]["roc_auc"].as_f64().unwrap() > 0.9);

    // References.
    assert_eq!(resolve(&reg, "bc").unwrap(), 2);
    assert_eq!(resolve(&reg, "bc:1").unwrap(), 1);
    assert_eq!(resolve(&reg, "bc@staging").unwrap(), 1);
    assert!(
        matches!(resolve(&reg, "bc@production"), Err(RegistryError::NotFound(m)) if m.contains("has no alias `production`"))
    );
    assert!(
        matches!(resolve(&reg, "nope"), Err(RegistryError::NotFound(m)) if m.contains("no model named `nope`"))
    );
    assert!(matches!(
        resolve(&reg, "bc:9"),
        Err(RegistryError::NotFound(_))
    ));
    for bad in ["bc@@x", "bc:0", "bc:x", "", "bc:1@a", "-bc", "b c"] {
        assert!(
            matches!(bad.parse::<Reference>(), Err(RegistryError::Invalid(_))),
            "{bad}"
        );
    }
    assert_eq!(
        "bc@prod".parse::<Reference>().unwrap().selector,
        Selector::Alias("prod".into())
    );

    // Gates: a failed one moves nothing and says what was compared.
    let err = reg
        .promote(&promotion(
            2,
            "production",
            &["roc_auc>=0.999", "accuracy>=0.5"],
        ))
        .unwrap_err();
    let RegistryError::GateFailed(table) = err else {
        panic!("gate failure expected")
    };
    assert!(
        table.contains("roc_auc >= 0.999") && table.contains("FAIL") && table.contains("pass"),
        "{table}"
    );
    assert!(!reg.meta().aliases("bc").unwrap().contains_key("production"));
    assert!(
        reg.promote(&promotion(2, "production", &["no_such_metric>=0"]))
            .is_err()
    );

    let (_, from) = reg
        .promote(&promotion(1, "production", &["roc_auc>=0.9"]))
        .unwrap();
    assert_eq!(from, None);
    let (_, from) = reg.promote(&promotion(2, "production", &[])).unwrap();
    assert_eq!(from, Some(1));
    assert_eq!(
        reg.rollback("bc", "production", "tester", "").unwrap(),
        (2, 1)
    );
    assert!(matches!(
        reg.rollback("bc", "production", "tester", ""),
        Err(RegistryError::Conflict(_))
    ));
    let history = reg.meta().alias_history("bc").unwrap();
    let moves: Vec<(String, Option<u32>, Option<u32>)> = history
        .iter()
        .map(|m| (m.action.clone(), m.from, m.to))
        .collect();
    assert_eq!(
        moves,
        vec![
            ("register".into(), None, Some(1)),
            ("promote".into(), None, Some(1)),
            ("promote".into(), Some(1), Some(2)),
            ("rollback".into(), Some(2), Some(1)),
        ]
    );

    // Delete refuses while aliased, then works; the audit log has every step.
    assert!(
        matches!(reg.delete("bc", 1, "tester"), Err(RegistryError::Conflict(m)) if m.contains("@production"))
    );
    reg.delete("bc", 2, "tester").unwrap();
    assert!(matches!(
        resolve(&reg, "bc:2"),
        Err(RegistryError::NotFound(_))
    ));
    let actions: Vec<String> = reg
        .meta()
        .audit(100)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "register", "register", "promote", "promote", "rollback", "delete"
        ]
    );
    // Numbers are never reused.
    assert_eq!(
        reg.register(&p2, &opts("bc", None)).unwrap().record.version,
        3
    );
    assert!(reg.verify().unwrap().problems.is_empty());
}

#[test]
fn tampered_or_missing_blobs_are_named_and_verify_reports_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("reg");
    let mut reg = Registry::open(&root).unwrap();
    let v = reg
        .register(&package(tmp.path(), 1), &opts("bc", None))
        .unwrap()
        .record;
    let dir = reg.materialize(&v).unwrap();
    assert!(dir.join("slipway.json").is_file() && dir.join("model.safetensors").is_file());
    let payload = v
        .files
        .iter()
        .find(|f| f.name == "model.safetensors")
        .unwrap();
    let blob = root
        .join("blobs/sha256")
        .join(&payload.sha256[..2])
        .join(&payload.sha256[2..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&blob, &bytes).unwrap();
    // The cached copy is intact, but a fresh materialisation reads the blob and refuses it.
    std::fs::remove_dir_all(&dir).unwrap();
    let err = reg.materialize(&v).unwrap_err().to_string();
    assert!(
        err.contains("bc:1 model.safetensors: blob") && err.contains("is corrupt"),
        "{err}"
    );
    let problems = reg.verify().unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("bc:1 model.safetensors"));
    std::fs::remove_file(&blob).unwrap();
    assert!(reg.verify().unwrap().problems[0].contains("is missing"));
    assert_ne!(sha256_hex(&bytes), payload.sha256);
}

#[test]
fn bad_registries_and_packages_are_refused_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = Registry::open(&file).err().unwrap().to_string();
    assert!(err.contains("is a file"), "{err}");

    let root = tmp.path().join("reg");
    let mut reg = Registry::open(&root).unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = reg
        .register(&empty, &opts("bc", None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no slipway.json"), "{err}");
    assert!(
        reg.register(&tmp.path().join("missing"), &opts("bc", None))
            .is_err()
    );
    let p = package(tmp.path(), 1);
    assert!(matches!(
        reg.register(&p, &opts("bad name", None)),
        Err(RegistryError::Invalid(_))
    ));
    // A payload that does not match its manifest is refused before anything is recorded.
    let payload = p.join("model.safetensors");
    let mut bytes = std::fs::read(&payload).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&payload, &bytes).unwrap();
    assert!(matches!(
        reg.register(&p, &opts("bc", None)),
        Err(RegistryError::Corrupt(_))
    ));
    assert!(reg.meta().list_models().unwrap().is_empty());
    assert!(reg.meta().audit(10).unwrap().is_empty());
    drop(reg);

    // A registry from a newer schema is refused with an upgrade hint.
    set_user_version(&root.join("registry.db"), 99);
    let err = Registry::open(&root).err().unwrap().to_string();
    assert!(
        err.contains("schema version 99") && err.contains("upgrade slipway"),
        "{err}"
    );
}

/// Sets SQLite's `user_version` header field (big-endian at byte 60) without a SQLite client.
fn set_user_version(db: &Path, version: u32) {
    let mut bytes = std::fs::read(db).unwrap();
    bytes[60..64].copy_from_slice(&version.to_be_bytes());
    std::fs::write(db, bytes).unwrap();
    let _ = std::fs::remove_file(db.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.with_extension("db-shm"));
}

#[test]
fn gates_parse() {
    let g: Gate = "roc_auc >= 0.75".parse().unwrap();
    assert_eq!(
        (g.metric.as_str(), g.op.as_str(), g.value),
        ("roc_auc", ">=", 0.75)
    );
    assert!("roc_auc=>0.7".parse::<Gate>().is_err());
    assert!(">=0.7".parse::<Gate>().is_err());
    assert!(
        "roc_auc>=high"
            .parse::<Gate>()
            .unwrap_err()
            .to_string()
            .contains("not a number")
    );
}

#[test]
fn readers_do_not_wait_on_a_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("reg");
    let mut reg = Registry::open(&root).unwrap();
    reg.register(&package(tmp.path(), 1), &opts("bc", Some("production")))
        .unwrap();
    drop(reg);
    // Another process holds the write lock (a registration in flight).
    let writer = rusqlite::Connection::open(root.join("registry.db")).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = std::time::Instant::now();
    let reader = Registry::open_existing(&root).unwrap();
    assert_eq!(resolve(&reader, "bc@production").unwrap(), 1);
    assert!(reader.verify().unwrap().problems.is_empty());
    // Not a timing assertion on speed: only that the reader did not sit out the 30 s busy wait.
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    writer.execute_batch("ROLLBACK").unwrap();
}

/// Cases found in review: each once let a damaged or hostile input move an alias, write outside
/// the registry, or rollback loop.
#[test]
fn the_same_package_registered_again_is_the_same_version() {
    let tmp = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(&tmp.path().join("reg")).unwrap();
    let p1 = package(tmp.path(), 1);
    let first = reg.register(&p1, &opts("bc", None)).unwrap();
    assert!(!first.reused);
    // The same folder again: no new version; an alias given moves to the one there is.
    let again = reg.register(&p1, &opts("bc", Some("staging"))).unwrap();
    assert!(again.reused);
    assert_eq!(again.record.version, first.record.version);
    assert_eq!(reg.meta().aliases("bc").unwrap()["staging"], 1);
    let history = reg.meta().alias_history("bc").unwrap();
    assert_eq!(history.len(), 1);
    assert!(
        history[0].reason.contains("already is version 1"),
        "{history:?}"
    );
    // Retrained the same way later: only the training time differs, so it is the same model.
    let later = tmp.path().join("later");
    std::fs::create_dir(&later).unwrap();
    std::fs::copy(
        p1.join("model.safetensors"),
        later.join("model.safetensors"),
    )
    .unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p1.join("slipway.json")).unwrap()).unwrap();
    manifest["lineage"]["created_at"] = "2031-01-01T00:00:00Z".into();
    std::fs::write(later.join("slipway.json"), manifest.to_string()).unwrap();
    let r = reg.register(&later, &opts("bc", None)).unwrap();
    assert_eq!((r.reused, r.record.version), (true, 1));
    // Anything else that differs (here the threshold) is a new version; so is another model name.
    manifest["target"]["threshold"] = 0.4.into();
    std::fs::write(later.join("slipway.json"), manifest.to_string()).unwrap();
    let r = reg.register(&later, &opts("bc", None)).unwrap();
    assert_eq!((r.reused, r.record.version), (false, 2));
    let r = reg.register(&p1, &opts("other", None)).unwrap();
    assert_eq!((r.reused, r.record.version), (false, 1));
    // The audit log has the three new versions and the alias move of the second call; the
    // reuses without an alias wrote nothing.
    let registers = reg
        .meta()
        .audit(100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "register")
        .count();
    assert_eq!(registers, 3 + 1);
}

#[test]
fn review_regressions() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("reg");
    let mut reg = Registry::open(&root).unwrap();
    let p1 = package(tmp.path(), 1);
    for p in [p1.clone(), package(tmp.path(), 2), package(tmp.path(), 3)] {
        reg.register(&p, &opts("bc", None)).unwrap();
    }
    // Rollback walks back as a stack; re-promoting the current version changes nothing.
    for v in [1, 2, 2] {
        reg.promote(&promotion(v, "production", &[])).unwrap();
    }
    assert_eq!(reg.rollback("bc", "production", "t", "").unwrap(), (2, 1));
    assert!(reg.rollback("bc", "production", "t", "").is_err());
    for v in [3, 1] {
        reg.promote(&promotion(v, "canary", &[])).unwrap();
    }
    reg.promote(&promotion(3, "canary", &[])).unwrap();
    assert_eq!(reg.rollback("bc", "canary", "t", "").unwrap(), (3, 1));
    assert_eq!(reg.rollback("bc", "canary", "t", "").unwrap(), (1, 3));
    assert!(reg.rollback("bc", "canary", "t", "").is_err());

    // Stored gates also guard `register --alias`.
    reg.set_gates(
        "bc",
        "production",
        &["roc_auc>=0.9999".parse().unwrap()],
        "t",
    )
    .unwrap();
    let err = reg
        .register(&p1, &opts("bc", Some("production")))
        .unwrap_err();
    assert!(matches!(err, RegistryError::GateFailed(_)), "{err}");

    // Many threads materialising the same version at once all get an intact copy.
    let v = reg.resolve(&"bc:1".parse().unwrap()).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                // Each thread opens its own registry, as separate processes would.
                let reader = Registry::open_existing(&root).unwrap();
                let dir = reader.materialize(&v).unwrap();
                assert!(dir.join("model.safetensors").is_file());
            });
        }
    });

    // A damaged row never names a path outside the registry.
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "mine").unwrap();
    let db = rusqlite::Connection::open(root.join("registry.db")).unwrap();
    db.execute(
        "UPDATE versions SET digest = ?1 WHERE version = 2",
        [victim.to_str().unwrap()],
    )
    .unwrap();
    drop(db);
    let damaged = reg.meta().version("bc", 2).unwrap();
    assert!(matches!(
        reg.materialize(&damaged),
        Err(RegistryError::Corrupt(_))
    ));
    assert!(victim.join("keep.txt").is_file());
    assert!(
        reg.verify()
            .unwrap()
            .problems
            .iter()
            .any(|p| p.contains("bc:2"))
    );

    // An export tar that lists no files is refused.
    let tar_path = tmp.path().join("empty.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    let record = serde_json::json!({"model": "x", "files": [], "digest": sha256_hex(b"")});
    let manifest = std::fs::read(p1.join("slipway.json")).unwrap();
    for (name, bytes) in [
        ("registry.json", serde_json::to_vec(&record).unwrap()),
        ("slipway.json", manifest),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    builder.finish().unwrap();
    drop(builder);
    let err = slipway_registry::read_export(&tar_path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must both be listed"), "{err}");
}

/// Runs one SQL statement on a registry's database, as someone with write access to the file
/// could (issue 13: `sqlite3 registry.db "UPDATE versions …"`).
fn tamper(root: &Path, sql: &str) {
    let db = rusqlite::Connection::open(root.join("registry.db")).unwrap();
    let changed = db.execute(sql, []).unwrap();
    assert!(changed > 0, "{sql} changed nothing");
}

#[test]
fn gates_read_the_digest_checked_manifest_and_verify_reports_an_edited_database_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("reg");
    let mut reg = Registry::open(&root).unwrap();
    let v = reg
        .register(&package(tmp.path(), 1), &opts("bc", None))
        .unwrap()
        .record;
    let auc = v.manifest["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc < 1.0, "{auc}");
    assert!(reg.verify().unwrap().problems.is_empty());
    drop(reg);
    // Someone edits the database's copy of the manifest to claim a perfect model.
    tamper(
        &root,
        "UPDATE versions SET manifest = json_set(manifest, '$.metrics.roc_auc', 1.0)",
    );
    let mut reg = Registry::open(&root).unwrap();
    let listed = reg.resolve(&"bc:1".parse().unwrap()).unwrap();
    assert_eq!(listed.manifest["metrics"]["roc_auc"], 1.0);
    // The gate reads the package's figure, not the edited one.
    let err = reg
        .promote(&promotion(1, "production", &["roc_auc>=0.9999"]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::GateFailed(_)), "{err}");
    assert!(err.to_string().contains(&format!("{auc:.4}")), "{err}");
    // verify sees the difference and names the version.
    let problems = reg.verify().unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("bc:1 slipway.json") && problems[0].contains("differs"),
        "{problems:?}"
    );
    // A gate the real figure meets still passes.
    reg.promote(&promotion(1, "production", &["roc_auc>=0.5"]))
        .unwrap();
}

/// A tar entry: its name and bytes.
type Entry = (String, Vec<u8>);

/// Rewrites an export tar: each entry through `edit(name, bytes)`.
fn rewrite_tar(tar: &Path, edit: &dyn Fn(&str, Vec<u8>) -> Entry) {
    let mut entries = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(tar).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        entries.push(edit(&name, bytes));
    }
    let mut builder = tar::Builder::new(std::fs::File::create(tar).unwrap());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        // Raw names, control characters included, as a hostile tar would carry them.
        let field = &mut header.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, bytes.as_slice()).unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn import_records_the_sizes_of_the_bytes_not_what_the_tar_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(&tmp.path().join("a")).unwrap();
    let v = reg
        .register(&package(tmp.path(), 1), &opts("bc", None))
        .unwrap()
        .record;
    let tar = tmp.path().join("bc.tar");
    reg.export(&v, &tar).unwrap();
    // The record claims every file is 10 GB; sizes are not part of any digest.
    rewrite_tar(&tar, &|name, bytes| {
        if name != "registry.json" {
            return (name.to_string(), bytes);
        }
        let mut record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for f in record["files"].as_array_mut().unwrap() {
            f["size"] = serde_json::json!(10_000_000_000u64);
        }
        (name.to_string(), serde_json::to_vec(&record).unwrap())
    });
    let mut other = Registry::open(&tmp.path().join("b")).unwrap();
    let imported = other
        .import(
            slipway_registry::read_export(&tar).unwrap(),
            None,
            None,
            "t",
        )
        .unwrap()
        .record;
    assert_eq!(imported.files.len(), v.files.len());
    for (got, want) in imported.files.iter().zip(&v.files) {
        assert_eq!(got.name, want.name);
        assert_eq!(got.size, want.size, "{}", got.name);
    }
    assert!(other.verify().unwrap().problems.is_empty());
    // A size edited in the database is a problem verify names.
    drop(other);
    tamper(
        &tmp.path().join("b"),
        "UPDATE versions SET files = json_set(files, '$[0].size', 10000000000)",
    );
    let other = Registry::open(&tmp.path().join("b")).unwrap();
    let problems = other.verify().unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("10000000000 bytes"), "{problems:?}");
}

#[test]
fn control_characters_in_a_tar_entry_name_are_escaped_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(&tmp.path().join("a")).unwrap();
    let v = reg
        .register(&package(tmp.path(), 1), &opts("bc", None))
        .unwrap()
        .record;
    let tar = tmp.path().join("bc.tar");
    reg.export(&v, &tar).unwrap();
    rewrite_tar(&tar, &|name, bytes| {
        if name == "model.safetensors" {
            ("\x1b[2J\x1b[1;1Hok\x07".to_string(), bytes)
        } else {
            (name.to_string(), bytes)
        }
    });
    let err = slipway_registry::read_export(&tar).unwrap_err().to_string();
    assert!(!err.chars().any(char::is_control), "{err:?}");
    assert!(err.contains("\\u{1b}[2J"), "{err}");
}
