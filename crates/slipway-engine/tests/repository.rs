//! The repository's semantics on a real registry: models follow their aliases, an unloaded
//! model is not reloaded by the watcher until it is loaded, a load takes only the server's own
//! names, and one broken package is reported while the others are served, then tried again when
//! its alias moves.

use slipway_engine::{Engine, EngineError, Event, LoadError, Source, State};
use slipway_registry::{Promotion, RegisterOptions, Registry};

use slipway_testkit::native_package as package;

fn register(
    reg: &mut Registry,
    model: &str,
    package_name: &str,
) -> slipway_registry::VersionRecord {
    reg.register(
        &package(package_name),
        &RegisterOptions {
            name: model.into(),
            by: "tester".into(),
            ..RegisterOptions::default()
        },
    )
    .unwrap()
    .record
}

fn promote(reg: &mut Registry, model: &str, version: u32) {
    reg.promote(&Promotion {
        model: model.into(),
        version,
        alias: "production".into(),
        by: "tester".into(),
        ..Promotion::default()
    })
    .unwrap();
}

#[test]
fn unload_load_and_a_broken_package() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("reg");
    let mut reg = Registry::open(&root).unwrap();
    let credit = register(&mut reg, "credit", "native_logistic_credit");
    promote(&mut reg, "credit", credit.version);
    let broken = register(&mut reg, "mpg", "native_linear_mpg");
    promote(&mut reg, "mpg", broken.version);
    // The mpg package's payload is damaged in the blob store.
    let payload = broken
        .files
        .iter()
        .find(|f| f.name == "model.safetensors")
        .unwrap();
    let blob = root
        .join("blobs/sha256")
        .join(&payload.sha256[..2])
        .join(&payload.sha256[2..]);
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();

    let engine = Engine::new(1).with_registry(root.clone());
    let repo = engine.repository();
    for (name, reference) in [("credit", "credit@production"), ("mpg", "mpg@production")] {
        repo.add(name, Source::Registry(reference.parse().unwrap()));
    }
    assert!(repo.readiness(&engine).is_err(), "nothing tried yet");
    let events = repo.sync(&engine);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Loaded { name, previous: None, .. } if name == "credit"))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Failed { name, serving: None, .. } if name == "mpg"))
    );
    // The healthy model is served, the broken one reported; the server is ready.
    assert!(engine.get("credit", None).is_ok());
    assert!(matches!(repo.state("mpg"), Some(State::Unavailable(_))));
    assert!(matches!(
        engine.get("mpg", None),
        Err(EngineError::Unavailable(_))
    ));
    assert!(repo.readiness(&engine).is_ok());
    // Not tried again until its alias moves.
    assert!(repo.sync(&engine).is_empty());

    // Unload stops following: the next sync does not bring it back.
    assert!(engine.remove("credit"));
    assert_eq!(repo.state("credit"), Some(State::Unloaded));
    assert!(repo.sync(&engine).is_empty());
    assert!(
        matches!(engine.get("credit", None), Err(EngineError::NotFound(m)) if m.contains("unloaded"))
    );
    // Load takes it back, and follows it again.
    assert!(matches!(
        repo.load(&engine, "credit"),
        Ok(Event::Loaded { .. })
    ));
    assert_eq!(repo.state("credit"), Some(State::Ready));
    // Load takes no versions, references or unknown names.
    assert!(matches!(
        repo.load(&engine, "credit:1"),
        Err(LoadError::NotAName(_))
    ));
    assert!(matches!(
        repo.load(&engine, "credit@staging"),
        Err(LoadError::NotAName(_))
    ));
    assert!(matches!(
        repo.load(&engine, "fraud"),
        Err(LoadError::Unknown(_))
    ));
    // A load of the broken model says it failed.
    assert!(matches!(
        repo.load(&engine, "mpg"),
        Err(LoadError::Failed(_))
    ));

    // A good version promoted: the broken model is served at once on the next sync.
    let fixed = register(&mut reg, "mpg", "native_mlp_penguins");
    promote(&mut reg, "mpg", fixed.version);
    let events = repo.sync(&engine);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Loaded { name, version, .. } if name == "mpg" && *version == fixed.version.to_string())),
        "{events:?}"
    );
    assert_eq!(repo.state("mpg"), Some(State::Ready));
    let index = repo.entries(&engine);
    assert_eq!(index.len(), 2);
    assert!(
        index
            .iter()
            .all(|e| e.state == State::Ready && e.version.is_some())
    );
}
