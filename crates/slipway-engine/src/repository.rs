//! What the server was asked to serve, and how each model stands: the model repository that
//! the protocol's index, load, unload and readiness report, and that the registry watcher
//! follows.
//!
//! The semantics, decided for issue 13:
//! - A model comes from a **source**: a package folder, or a registry reference such as
//!   `credit@production` (the server follows it: when the alias moves, the new version is
//!   loaded off the request path and swapped in).
//! - **unload** stops serving a model *and stops following it*: it stays unloaded until a
//!   **load**, which loads its source again (the alias's version now) and follows it again.
//! - **load** takes only the names the server was started with. It does not take a version
//!   or a reference: a version reaches a served name only through the registry (promote,
//!   with its gates, or rollback), so a load cannot serve a version around the gates.
//! - A source that fails to load does not stop the others: the model is `UNAVAILABLE` with
//!   the reason (index, model ready, `/metrics`), and is tried again when its alias moves or
//!   on a load. A version that fails after another has served keeps the old one serving.
//! - The server is **ready** when every source has had its first try and at least one model
//!   is served.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use slipway_registry::Reference;

use crate::{Engine, EngineError};

/// Where a served name's package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A package folder, loaded as version 1.
    Folder(PathBuf),
    /// A registry reference, followed.
    Registry(Reference),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Folder(p) => write!(f, "{}", p.display()),
            Source::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// How a model stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not tried yet.
    Loading,
    /// Served.
    Ready,
    /// Its source does not load (the reason); nothing of it is served.
    Unavailable(String),
    /// Unloaded through the repository extension; not followed until loaded.
    Unloaded,
}

impl State {
    /// The protocol's name for the state.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Loading => "LOADING",
            State::Ready => "READY",
            State::Unavailable(_) => "UNAVAILABLE",
            State::Unloaded => "UNLOADED",
        }
    }
}

/// One model of the repository, as the index lists it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub source: Option<Source>,
    /// The version served, if any.
    pub version: Option<String>,
    pub state: State,
    /// Why the last load failed, even when an older version still serves.
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
struct Record {
    source: Option<Source>,
    state: State,
    reason: Option<String>,
    /// The registry version that last failed to load, not tried again until its alias moves.
    failed: Option<u32>,
}

/// Something the repository did that an operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `name` now serves `version` from `source`, replacing `previous`.
    Loaded {
        name: String,
        source: String,
        version: String,
        previous: Option<String>,
    },
    /// `source` did not load; `serving` is the version still served, if any.
    Failed {
        name: String,
        source: String,
        reason: String,
        serving: Option<String>,
    },
}

/// Why a load through the repository extension was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Not a name this server serves.
    Unknown(String),
    /// A version or reference instead of a name.
    NotAName(String),
    /// A model served without a source to load it from (added by an embedding program).
    NoSource(String),
    /// The source did not load.
    Failed(String),
}

/// The repository: every name the server was asked to serve, its source and its state.
#[derive(Debug, Default)]
pub struct Repository {
    registry: Option<PathBuf>,
    records: Mutex<BTreeMap<String, Record>>,
}

impl Repository {
    /// A repository whose registry references resolve in the registry at `root`.
    pub fn new(registry: Option<PathBuf>) -> Repository {
        Repository {
            registry,
            records: Mutex::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Record>) -> T) -> T {
        let mut guard = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Writes one line to the registry's audit log (`slipway registry audit`), when the server
    /// has a registry (a server of package folders only has none: `Ok(false)`).
    pub fn audit(
        &self,
        by: &str,
        action: &str,
        model: &str,
        detail: &str,
    ) -> Result<bool, slipway_registry::RegistryError> {
        let Some(root) = &self.registry else {
            return Ok(false);
        };
        let mut registry = match slipway_registry::Registry::open_existing(root) {
            Ok(r) => r,
            Err(slipway_registry::RegistryError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        registry.append_audit(by, action, Some(model), detail)?;
        Ok(true)
    }

    /// Adds `name` from `source`, not loaded yet ([`sync`](Self::sync) loads it).
    pub fn add(&self, name: &str, source: Source) {
        self.with(|r| {
            r.insert(
                name.to_string(),
                Record {
                    source: Some(source),
                    state: State::Loading,
                    reason: None,
                    failed: None,
                },
            );
        });
    }

    pub(crate) fn served(&self, name: &str) {
        self.with(|r| {
            let rec = r.entry(name.to_string()).or_insert(Record {
                source: None,
                state: State::Ready,
                reason: None,
                failed: None,
            });
            rec.state = State::Ready;
            rec.reason = None;
            rec.failed = None;
        });
    }

    /// Marks `name` unloaded and no longer followed; whether it was known and not unloaded
    /// already.
    pub(crate) fn unloaded(&self, name: &str) -> bool {
        self.with(|r| match r.get_mut(name) {
            Some(rec) => std::mem::replace(&mut rec.state, State::Unloaded) != State::Unloaded,
            None => false,
        })
    }

    /// The state of `name`, if the repository knows it.
    pub fn state(&self, name: &str) -> Option<State> {
        self.with(|r| r.get(name).map(|rec| rec.state.clone()))
    }

    /// Every model, by name.
    pub fn entries(&self, engine: &Engine) -> Vec<Entry> {
        let records = self.with(|r| r.clone());
        records
            .into_iter()
            .map(|(name, rec)| Entry {
                version: engine.get(&name, None).ok().map(|s| s.version.clone()),
                name,
                source: rec.source,
                state: rec.state,
                reason: rec.reason,
            })
            .collect()
    }

    /// `Ok` when every model has had its first try and one at least is served; else why not.
    pub fn readiness(&self, engine: &Engine) -> Result<(), String> {
        let loading: Vec<String> = self.with(|r| {
            r.iter()
                .filter(|(_, rec)| rec.state == State::Loading)
                .map(|(n, _)| n.clone())
                .collect()
        });
        if !loading.is_empty() {
            return Err(format!("still loading {}", loading.join(", ")));
        }
        if engine.models().is_empty() {
            return Err("no model is loaded".into());
        }
        Ok(())
    }

    /// Brings every followed model up to its source: loads what is not served yet, and a
    /// registry reference's new version when its alias has moved. Runs on the caller's thread
    /// (the watcher's, or start-up's): loading and warming never happen on the request path.
    pub fn sync(&self, engine: &Engine) -> Vec<Event> {
        let names: Vec<String> = self.with(|r| {
            r.iter()
                .filter(|(_, rec)| rec.source.is_some() && rec.state != State::Unloaded)
                .map(|(n, _)| n.clone())
                .collect()
        });
        names
            .iter()
            .filter_map(|name| self.sync_one(engine, name, false))
            .collect()
    }

    /// Loads `name` again from its source, and follows it again (the repository extension's
    /// load).
    pub fn load(&self, engine: &Engine, name: &str) -> Result<Event, LoadError> {
        if name.contains([':', '@', '/']) {
            return Err(LoadError::NotAName(format!(
                "load takes the name of a model this server serves, not `{}`: a version reaches a served model through the registry (slipway promote, with its gates)",
                crate::clip(name)
            )));
        }
        let known = self.with(|r| match r.get_mut(name) {
            Some(rec) if rec.source.is_some() => {
                if rec.state == State::Unloaded {
                    rec.state = State::Loading;
                }
                rec.failed = None;
                Some(true)
            }
            Some(_) => Some(false),
            None => None,
        });
        if known == Some(false) {
            return Err(LoadError::NoSource(format!(
                "model `{}` was put in service without a source to load it from; this server has no registry or package folder for it (start it with --registry and --model NAME@ALIAS)",
                crate::clip(name)
            )));
        }
        if known.is_none() {
            return Err(LoadError::Unknown(format!(
                "model `{}` is not one this server was started with; start it with --model NAME@ALIAS or the package folder",
                crate::clip(name)
            )));
        }
        match self.sync_one(engine, name, true) {
            Some(e @ Event::Loaded { .. }) => Ok(e),
            Some(Event::Failed { reason, .. }) => Err(LoadError::Failed(reason)),
            None => {
                let version = engine
                    .get(name, None)
                    .map(|s| s.version.clone())
                    .unwrap_or_default();
                Ok(Event::Loaded {
                    name: name.to_string(),
                    source: self.source_text(name),
                    version: version.clone(),
                    previous: Some(version),
                })
            }
        }
    }

    fn source_text(&self, name: &str) -> String {
        self.with(|r| {
            r.get(name)
                .and_then(|rec| rec.source.as_ref())
                .map(ToString::to_string)
                .unwrap_or_default()
        })
    }

    /// Loads `name` if its source has something it does not serve (`force`: even a version
    /// that failed before). `None`: nothing to do.
    fn sync_one(&self, engine: &Engine, name: &str, force: bool) -> Option<Event> {
        let (source, failed) = self.with(|r| {
            r.get(name)
                .and_then(|rec| rec.source.clone().map(|s| (s, rec.failed)))
        })?;
        let current = engine.get(name, None).ok().map(|s| s.version.clone());
        let loaded = match &source {
            Source::Folder(dir) => {
                if current.is_some() && !force {
                    return None;
                }
                slipway_runtime::load(dir)
                    .map(|l| ("1".to_string(), l))
                    .map_err(|e| (e.to_string(), None))
            }
            Source::Registry(reference) => {
                let Some(registry) = self.registry.as_ref() else {
                    return self.failed(
                        engine,
                        name,
                        &source,
                        "the server has no registry to resolve references in".into(),
                        None,
                        current,
                    );
                };
                let opened = slipway_registry::Registry::open_existing(registry);
                let version = match opened.and_then(|reg| reg.resolve(reference).map(|v| (reg, v)))
                {
                    Ok(v) => v,
                    Err(e) => {
                        return self.failed(engine, name, &source, e.to_string(), None, current);
                    }
                };
                let (registry, version) = version;
                let wanted = version.version.to_string();
                if current.as_deref() == Some(wanted.as_str())
                    || (!force && failed == Some(version.version))
                {
                    return None;
                }
                registry
                    .materialize(&version)
                    .map_err(|e| e.to_string())
                    .and_then(|dir| slipway_runtime::load(&dir).map_err(|e| e.to_string()))
                    .map(|l| (wanted, l))
                    .map_err(|e| (e, Some(version.version)))
            }
        };
        if !force && self.state(name) == Some(State::Unloaded) {
            // Unloaded while its package was loading: it stays unloaded.
            return None;
        }
        match loaded {
            Ok((version, loaded)) => {
                engine.add(name, &version, loaded);
                Some(Event::Loaded {
                    name: name.to_string(),
                    source: source.to_string(),
                    version,
                    previous: current,
                })
            }
            Err((reason, version)) => self.failed(engine, name, &source, reason, version, current),
        }
    }

    fn failed(
        &self,
        engine: &Engine,
        name: &str,
        source: &Source,
        reason: String,
        version: Option<u32>,
        serving: Option<String>,
    ) -> Option<Event> {
        engine
            .load_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.with(|r| {
            if let Some(rec) = r.get_mut(name) {
                if serving.is_none() {
                    rec.state = State::Unavailable(reason.clone());
                }
                rec.reason = Some(reason.clone());
                rec.failed = version;
            }
        });
        Some(Event::Failed {
            name: name.to_string(),
            source: source.to_string(),
            reason,
            serving,
        })
    }
}

impl From<LoadError> for EngineError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Unknown(m) => EngineError::NotFound(m),
            LoadError::NotAName(m) | LoadError::NoSource(m) => EngineError::InvalidInput(m),
            LoadError::Failed(m) => EngineError::Unavailable(m),
        }
    }
}
