//! Slipway's model registry: the single source of truth for what may run in production.
//!
//! Every version is immutable and content-addressed; every alias move is kept with who, when,
//! from, to and why; promotion passes explicit gates; rollback is one call; every change is in
//! the audit log. Storage sits behind two traits: [`MetadataStore`] (SQLite now) and
//! [`BlobStore`] (a folder now).
//!
//! Layout of a registry folder: `registry.db` (SQLite, WAL), `blobs/sha256/ab/cdef…` (package
//! files by digest), `cache/<digest>/` (packages materialised for loading, checked on the way).

pub mod blob;
pub mod error;
pub mod exchange;
pub mod gate;
pub mod keys;
pub mod meta;
mod meta_keys;
mod register;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use blob::{BlobStore, FsBlobStore, sha256_hex};
pub use error::{RegistryError, Result};
pub use exchange::{Exported, read_export};
pub use gate::{Check, Gate, format_checks};
pub use keys::{KeyRecord, Role};
pub use meta::{
    AliasMove, AuditEntry, FileEntry, MetadataStore, ModelSummary, NewVersion, SqliteStore,
    VersionRecord,
};
pub use verify::Verification;

/// The folder a registry lives in unless told otherwise.
pub const DEFAULT_REGISTRY: &str = "slipway-data";

/// Which version of a model a reference means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `credit`: the newest version.
    Latest,
    /// `credit:3`.
    Version(u32),
    /// `credit@production`.
    Alias(String),
}

/// A model reference: `credit`, `credit:3` or `credit@production`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub model: String,
    pub selector: Selector,
}

/// Checks a model or alias name: letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "`{name}` is not a valid {kind} name: use letters, digits, `.`, `_` and `-`, starting with a letter or digit"
        )))
    }
}

impl std::str::FromStr for Reference {
    type Err = RegistryError;
    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            RegistryError::Invalid(format!(
                "`{text}` is not a model reference; write NAME, NAME:VERSION or NAME@ALIAS (e.g. credit:3, credit@production)"
            ))
        };
        let (model, selector) = match (text.split_once(':'), text.split_once('@')) {
            (Some(_), Some(_)) => return Err(bad()),
            (Some((m, v)), None) => {
                let v: u32 = v.parse().ok().filter(|v| *v > 0).ok_or_else(bad)?;
                (m, Selector::Version(v))
            }
            (None, Some((m, a))) => {
                check_name("alias", a).map_err(|_| bad())?;
                (m, Selector::Alias(a.to_string()))
            }
            (None, None) => (text, Selector::Latest),
        };
        check_name("model", model).map_err(|_| bad())?;
        Ok(Reference {
            model: model.to_string(),
            selector,
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Selector::Latest => write!(f, "{}", self.model),
            Selector::Version(v) => write!(f, "{}:{v}", self.model),
            Selector::Alias(a) => write!(f, "{}@{a}", self.model),
        }
    }
}

/// What [`Registry::register`] did.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The version that holds the package.
    pub record: VersionRecord,
    /// The model already had this package as `record`; nothing new was added.
    pub reused: bool,
}

/// What a registration says about the package.
#[derive(Debug, Clone, Default)]
pub struct RegisterOptions {
    pub name: String,
    pub alias: Option<String>,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub by: String,
}

/// A promotion request.
#[derive(Debug, Clone, Default)]
pub struct Promotion {
    pub model: String,
    pub version: u32,
    pub alias: String,
    /// Metric gates on the candidate's recorded metrics.
    pub gates: Vec<Gate>,
    /// Checks computed by the caller (champion/challenger on labelled data).
    pub extra_checks: Vec<Check>,
    pub by: String,
    pub reason: String,
}

/// A registry: metadata store plus blob store, in one folder.
pub struct Registry {
    root: PathBuf,
    meta: Box<dyn MetadataStore>,
    blobs: Box<dyn BlobStore>,
}

/// The files of a package folder that the registry stores, in canonical order.
pub(crate) use slipway_core::manifest::files::{ALL as PACKAGE_FILES, MANIFEST};

/// The digest of a package: SHA-256 over `name\0sha256\n` of its files, sorted by name.
pub fn package_digest(files: &[FileEntry]) -> String {
    let mut sorted: Vec<&FileEntry> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut canonical = Vec::new();
    for f in sorted {
        canonical.extend_from_slice(f.name.as_bytes());
        canonical.push(0);
        canonical.extend_from_slice(f.sha256.as_bytes());
        canonical.push(b'\n');
    }
    sha256_hex(&canonical)
}

impl Registry {
    /// Opens the registry in `root`, creating it if needed.
    pub fn open(root: &Path) -> Result<Self> {
        if root.exists() && !root.is_dir() {
            return Err(RegistryError::Invalid(format!(
                "the registry path {} is a file; give a folder with --registry or SLIPWAY_REGISTRY",
                root.display()
            )));
        }
        std::fs::create_dir_all(root).map_err(|e| RegistryError::Io {
            path: root.to_path_buf(),
            source: e,
        })?;
        let meta = SqliteStore::open(&root.join("registry.db"))?;
        let blobs = FsBlobStore::new(root.join("blobs"));
        Ok(Registry {
            root: root.to_path_buf(),
            meta: Box::new(meta),
            blobs: Box::new(blobs),
        })
    }

    /// Opens an existing registry; a missing one is an error that says how to make one, so that
    /// a mistyped path never creates an empty registry.
    pub fn open_existing(root: &Path) -> Result<Self> {
        if !root.join("registry.db").is_file() {
            if root.exists() && !root.is_dir() {
                return Self::open(root);
            }
            return Err(RegistryError::NotFound(format!(
                "no registry at {}; register a model first (`slipway register DIR --name NAME`) or point --registry / SLIPWAY_REGISTRY at one",
                root.display()
            )));
        }
        Self::open(root)
    }

    /// A registry over any stores (PostgreSQL, S3, … later).
    pub fn with_stores(
        root: &Path,
        meta: Box<dyn MetadataStore>,
        blobs: Box<dyn BlobStore>,
    ) -> Self {
        Registry {
            root: root.to_path_buf(),
            meta,
            blobs,
        }
    }

    /// The registry's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Appends one audit line for an action taken outside the registry (a server's load or
    /// unload, by whom and from where).
    pub fn append_audit(
        &mut self,
        by: &str,
        action: &str,
        model: Option<&str>,
        detail: &str,
    ) -> Result<()> {
        self.meta.append_audit(by, action, model, detail)
    }

    /// The metadata store, for listings.
    pub fn meta(&self) -> &dyn MetadataStore {
        self.meta.as_ref()
    }

    /// A version's manifest as its package holds it: `slipway.json` read from the blob store,
    /// checked against its digest, which the version's package digest covers. The database
    /// keeps a copy for listings; decisions (gates) read this one.
    pub fn manifest(&self, version: &VersionRecord) -> Result<serde_json::Value> {
        check_record(version)?;
        let file = version
            .files
            .iter()
            .find(|f| f.name == MANIFEST)
            .ok_or_else(|| damaged(version))?;
        let context = format!("{}:{} slipway.json", version.model, version.version);
        let bytes = self.blobs.get(&file.sha256, &context)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::Corrupt(format!("{context}: not a readable manifest ({e})"))
        })
    }

    /// The version a reference means.
    pub fn resolve(&self, reference: &Reference) -> Result<VersionRecord> {
        let model = &reference.model;
        match &reference.selector {
            Selector::Version(v) => self.meta.version(model, *v),
            Selector::Latest => {
                let versions = self.meta.versions(model)?;
                versions.into_iter().next_back().ok_or_else(|| {
                    RegistryError::NotFound(format!("model `{model}` has no version left"))
                })
            }
            Selector::Alias(alias) => {
                let aliases = self.meta.aliases(model)?;
                let v = aliases.get(alias).ok_or_else(|| {
                    RegistryError::NotFound(format!(
                        "model `{model}` has no alias `{alias}`{}",
                        if aliases.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (it has: {})",
                                aliases
                                    .keys()
                                    .map(String::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    ))
                })?;
                self.meta.version(model, *v)
            }
        }
    }

    /// Writes a version's files into `cache/<digest>/`, each checked against its digest, and
    /// returns the folder. A cached copy is reused only if every file still matches.
    pub fn materialize(&self, version: &VersionRecord) -> Result<PathBuf> {
        check_record(version)?;
        let cache = self.root.join("cache");
        let dir = cache.join(&version.digest);
        let intact = |dir: &Path| {
            version.files.iter().all(|f| {
                std::fs::read(dir.join(&f.name))
                    .map(|b| sha256_hex(&b) == f.sha256)
                    .unwrap_or(false)
            })
        };
        if intact(&dir) {
            return Ok(dir);
        }
        let unique = format!(
            "{}.{}.{:?}",
            version.digest,
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], "");
        let staging = cache.join(format!(".staging.{unique}"));
        let io = |path: &Path, e: std::io::Error| RegistryError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let filled = (|| -> Result<()> {
            std::fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;
            for f in &version.files {
                let context = format!("{}:{} {}", version.model, version.version, f.name);
                let bytes = self.blobs.get(&f.sha256, &context)?;
                let path = staging.join(&f.name);
                std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
            }
            // First one in wins: a rename onto an existing folder fails, and whoever loses
            // uses the winner's copy once it checks out. Only a copy that is still damaged is
            // moved aside (never deleted in place: another process may be reading it), then the
            // checked copy takes its name. Moving aside only after a failed rename means a
            // good copy another thread has just put in place is never displaced.
            match std::fs::rename(&staging, &dir) {
                Ok(()) => return Ok(()),
                Err(_) if intact(&dir) => return Ok(()),
                Err(_) => {}
            }
            let aside = cache.join(format!(".damaged.{unique}"));
            if std::fs::rename(&dir, &aside).is_ok() {
                let _ = std::fs::remove_dir_all(&aside);
            }
            match std::fs::rename(&staging, &dir) {
                Ok(()) => Ok(()),
                // Another process put an intact copy there first: use it.
                Err(_) if intact(&dir) => Ok(()),
                Err(e) => Err(io(&dir, e)),
            }
        })();
        let _ = std::fs::remove_dir_all(&staging);
        filled.map(|()| dir)
    }

    /// Points `alias` at `version` if every gate passes; returns the checks and the version the
    /// alias pointed at before. A failed gate moves nothing.
    pub fn promote(&mut self, request: &Promotion) -> Result<(Vec<Check>, Option<u32>)> {
        let Promotion {
            model,
            version,
            alias,
            gates,
            extra_checks,
            by,
            reason,
        } = request;
        let (model, version, alias) = (model.as_str(), *version, alias.as_str());
        check_name("alias", alias)?;
        let record = self.meta.version(model, version)?;
        // Gates read the manifest inside the digest-checked package, never the database's copy.
        let metrics = metrics_of(&self.manifest(&record)?);
        // Gates stored for the alias apply to every promotion, besides those given with it.
        let stored = self.meta.gates(model, alias)?;
        let stored = stored
            .iter()
            .map(|g| g.parse::<Gate>())
            .collect::<Result<Vec<_>>>()?;
        let mut checks: Vec<Check> = stored
            .iter()
            .chain(gates.iter())
            .map(|g| g.check(&metrics))
            .collect();
        checks.extend(extra_checks.iter().cloned());
        if checks.iter().any(|c| !c.passed) {
            return Err(RegistryError::GateFailed(format_checks(
                model, version, alias, &checks,
            )));
        }
        // An alias already at the version does not move: nothing is recorded.
        if self.meta.aliases(model)?.get(alias) == Some(&version) {
            return Ok((checks, Some(version)));
        }
        let from = self
            .meta
            .move_alias(model, alias, Some(version), by, reason, "promote")?;
        Ok((checks, from))
    }

    /// Moves `alias` back to the version it pointed at before its current one (walking back
    /// through earlier promotions on repeated calls), recording `reason` beside the move.
    /// Returns `(from, to)`.
    pub fn rollback(
        &mut self,
        model: &str,
        alias: &str,
        by: &str,
        reason: &str,
    ) -> Result<(u32, u32)> {
        let aliases = self.meta.aliases(model)?;
        let current = *aliases.get(alias).ok_or_else(|| {
            RegistryError::NotFound(format!("model `{model}` has no alias `{alias}`"))
        })?;
        let history = self.meta.alias_history(model)?;
        // Replay the alias's moves as a stack: a move to another version pushes the one it
        // left; a rollback pops. Moves to the version already current change nothing.
        let mut stack: Vec<Option<u32>> = Vec::new();
        let mut at: Option<u32> = None;
        for m in history.iter().filter(|m| m.alias == alias) {
            if m.action == "rollback" {
                stack.pop();
                at = m.to;
            } else if m.to != at {
                stack.push(at);
                at = m.to;
            }
        }
        let target = stack.last().copied().flatten().ok_or_else(|| {
            RegistryError::Conflict(format!(
                "{model}@{alias} has no earlier version to roll back to"
            ))
        })?;
        self.meta.version(model, target).map_err(|_| {
            RegistryError::Conflict(format!(
                "{model}@{alias} pointed at version {target} before, which was deleted"
            ))
        })?;
        self.meta.move_alias(
            model,
            alias,
            Some(target),
            by,
            &if reason.is_empty() {
                format!("rollback from {current}")
            } else {
                format!("rollback from {current}: {reason}")
            },
            "rollback",
        )?;
        Ok((current, target))
    }

    /// `register --alias` and `import --alias` move an alias too: the alias's stored gates
    /// apply to them as to `promote`.
    fn check_stored_gates(
        &self,
        model: &str,
        alias: Option<&str>,
        manifest: &serde_json::Value,
    ) -> Result<()> {
        let Some(alias) = alias else { return Ok(()) };
        let stored = match self.meta.gates(model, alias) {
            Ok(g) => g,
            Err(RegistryError::NotFound(_)) => return Ok(()), // a new model has no gates yet
            Err(e) => return Err(e),
        };
        let gates = stored
            .iter()
            .map(|g| g.parse::<Gate>())
            .collect::<Result<Vec<_>>>()?;
        let metrics = metrics_of(manifest);
        let checks: Vec<Check> = gates.iter().map(|g| g.check(&metrics)).collect();
        if checks.iter().any(|c| !c.passed) {
            return Err(RegistryError::GateFailed(
                format_checks(model, 0, alias, &checks).replace(
                    &format!("{model}:0"),
                    &format!("the new version of {model}"),
                ),
            ));
        }
        Ok(())
    }

    /// Stores the gates every promotion to `alias` must pass (replacing earlier ones).
    pub fn set_gates(&mut self, model: &str, alias: &str, gates: &[Gate], by: &str) -> Result<()> {
        check_name("alias", alias)?;
        let text: Vec<String> = gates
            .iter()
            .map(|g| format!("{}{}{}", g.metric, g.op, g.value))
            .collect();
        self.meta.set_gates(model, alias, &text, by)
    }

    /// Deletes a version no alias points at.
    pub fn delete(&mut self, model: &str, version: u32, by: &str) -> Result<()> {
        self.meta.delete_version(model, version, by)
    }
}

/// Checks a version record read from the database before its paths are used: a damaged row
/// must never name a file outside the registry.
pub fn check_record(v: &VersionRecord) -> Result<()> {
    let hex = |d: &str| {
        d.len() == 64
            && d.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let mut names: Vec<&str> = v.files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    let unique = names.windows(2).all(|w| w[0] != w[1]);
    let ok = hex(&v.digest)
        && unique
        && names.contains(&MANIFEST)
        && v.files
            .iter()
            .all(|f| PACKAGE_FILES.contains(&f.name.as_str()) && hex(&f.sha256))
        && package_digest(&v.files) == v.digest;
    if ok { Ok(()) } else { Err(damaged(v)) }
}

fn damaged(v: &VersionRecord) -> RegistryError {
    RegistryError::Corrupt(format!(
        "{}:{}: the registry's record of this version is damaged (digest or file list); restore registry.db from a backup or delete the version",
        v.model, v.version
    ))
}

/// A manifest's metrics.
fn metrics_of(manifest: &serde_json::Value) -> BTreeMap<String, f64> {
    manifest
        .get("metrics")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default()
}

pub use slipway_core::printable;

/// The first 12 characters of a digest, for display.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_escapes_control_characters_only() {
        assert_eq!(
            super::printable("a\tb\u{1b}[2J\u{9b}c é…"),
            "a\\tb\\u{1b}[2J\\u{9b}c é…"
        );
    }
}
