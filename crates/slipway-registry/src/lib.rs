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
pub mod meta;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use blob::{BlobStore, FsBlobStore, sha256_hex};
pub use error::{RegistryError, Result};
pub use meta::{
    AliasMove, AuditEntry, FileEntry, MetadataStore, ModelSummary, NewVersion, SqliteStore,
    VersionRecord,
};

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

/// A metric floor or ceiling a version must meet to be promoted: `roc_auc>=0.75`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub metric: String,
    pub op: String,
    pub value: f64,
}

impl std::str::FromStr for Gate {
    type Err = RegistryError;
    fn from_str(text: &str) -> Result<Self> {
        for op in [">=", "<=", "==", ">", "<"] {
            if let Some((metric, value)) = text.split_once(op) {
                let metric = metric.trim();
                let value: f64 = value.trim().parse().map_err(|_| {
                    RegistryError::Invalid(format!(
                        "gate `{text}`: `{}` is not a number",
                        value.trim()
                    ))
                })?;
                if metric.is_empty()
                    || !metric
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    break;
                }
                return Ok(Gate {
                    metric: metric.to_string(),
                    op: op.to_string(),
                    value,
                });
            }
        }
        Err(RegistryError::Invalid(format!(
            "gate `{text}` is not METRIC>=VALUE (or >, <=, <, ==), e.g. roc_auc>=0.75"
        )))
    }
}

/// One compared figure of a promotion.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    /// What was checked, e.g. `roc_auc >= 0.75`.
    pub rule: String,
    /// The candidate's figure (None when it has no such metric).
    pub candidate: Option<f64>,
    /// What it was compared with (the floor, or the champion's figure).
    pub against: Option<f64>,
    pub passed: bool,
}

impl Gate {
    /// Checks the gate against a version's recorded metrics.
    pub fn check(&self, metrics: &BTreeMap<String, f64>) -> Check {
        let candidate = metrics.get(&self.metric).copied();
        let passed = candidate.is_some_and(|v| match self.op.as_str() {
            ">=" => v >= self.value,
            "<=" => v <= self.value,
            ">" => v > self.value,
            "<" => v < self.value,
            _ => v == self.value,
        });
        Check {
            rule: format!("{} {} {}", self.metric, self.op, self.value),
            candidate,
            against: Some(self.value),
            passed,
        }
    }
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
const PACKAGE_FILES: &[&str] = &["slipway.json", "model.safetensors", "model.onnx"];

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

    /// The metadata store, for listings.
    pub fn meta(&self) -> &dyn MetadataStore {
        self.meta.as_ref()
    }

    /// Registers a package folder as the next version of a model. The files are stored as
    /// blobs first; the version appears, whole, in one database transaction after them.
    pub fn register(&mut self, dir: &Path, options: &RegisterOptions) -> Result<VersionRecord> {
        check_name("model", &options.name)?;
        if let Some(a) = &options.alias {
            check_name("alias", a)?;
        }
        let (manifest, files) = self.store_package(dir)?;
        self.check_stored_gates(&options.name, options.alias.as_deref(), &manifest)?;
        self.meta.insert_version(NewVersion {
            model: options.name.clone(),
            digest: package_digest(&files),
            manifest,
            files,
            description: options.description.clone(),
            tags: options.tags.clone(),
            by: options.by.clone(),
            alias: options.alias.clone(),
            action: "register".into(),
        })
    }

    fn store_package(&self, dir: &Path) -> Result<(serde_json::Value, Vec<FileEntry>)> {
        if !dir.is_dir() {
            return Err(RegistryError::NotFound(format!(
                "{} is not a package folder",
                dir.display()
            )));
        }
        let manifest_path = dir.join("slipway.json");
        let text = std::fs::read(&manifest_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                RegistryError::Corrupt(format!(
                    "{} has no slipway.json; is it a Slipway package folder?",
                    dir.display()
                ))
            } else {
                RegistryError::Io {
                    path: manifest_path.clone(),
                    source: e,
                }
            }
        })?;
        let parsed = slipway_core::Manifest::from_json(&String::from_utf8_lossy(&text))
            .map_err(|e| RegistryError::Corrupt(format!("{}: {e}", manifest_path.display())))?;
        let manifest: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| RegistryError::Corrupt(format!("{}: {e}", manifest_path.display())))?;
        let mut files = Vec::new();
        for name in PACKAGE_FILES {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| RegistryError::Io {
                path: path.clone(),
                source: e,
            })?;
            let sha256 = sha256_hex(&bytes);
            if *name == parsed.payload.file && sha256 != parsed.payload.sha256 {
                return Err(RegistryError::Corrupt(format!(
                    "{}: the payload does not match the digest in slipway.json; the package is corrupt",
                    path.display()
                )));
            }
            self.blobs.put_hashed(&bytes, &sha256)?;
            files.push(FileEntry {
                name: (*name).to_string(),
                sha256,
                size: bytes.len() as u64,
            });
        }
        if !files.iter().any(|f| f.name == parsed.payload.file) {
            return Err(RegistryError::Invalid(format!(
                "{}: the payload {} is missing",
                dir.display(),
                parsed.payload.file
            )));
        }
        Ok((manifest, files))
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
        let metrics: BTreeMap<String, f64> = record
            .manifest
            .get("metrics")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
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
        let from = self
            .meta
            .move_alias(model, alias, Some(version), by, reason, "promote")?;
        Ok((checks, from))
    }

    /// Moves `alias` back to the version it pointed at before its current one (walking back
    /// through earlier promotions on repeated calls). Returns `(from, to)`.
    pub fn rollback(&mut self, model: &str, alias: &str, by: &str) -> Result<(u32, u32)> {
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
            &format!("rollback from {current}"),
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
        let metrics: BTreeMap<String, f64> = manifest
            .get("metrics")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
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

    /// Checks the whole registry: the database, and every file of every version against its
    /// digest. Returns the problems found, each naming the model version and blob.
    pub fn verify(&self) -> Result<Verification> {
        let mut problems = self.meta.integrity_check()?;
        let mut versions = 0;
        // One model at a time, so memory stays bounded by the largest model, not the registry;
        // a blob shared by many versions is hashed once.
        let mut checked: std::collections::HashMap<String, Option<String>> =
            std::collections::HashMap::new();
        for model in self.meta.list_models()? {
            for v in self.meta.versions(&model.name)? {
                versions += 1;
                if let Err(e) = check_record(&v) {
                    problems.push(e.to_string());
                    continue;
                }
                for f in &v.files {
                    let context = format!("{}:{} {}", v.model, v.version, f.name);
                    let outcome = checked.entry(f.sha256.clone()).or_insert_with(|| {
                        self.blobs.check(&f.sha256, "").err().map(|e| e.to_string())
                    });
                    if outcome.is_some() {
                        // Re-check to word the problem with this version's name.
                        if let Err(e) = self.blobs.check(&f.sha256, &context) {
                            problems.push(e.to_string());
                        }
                    }
                }
            }
        }
        Ok(Verification { versions, problems })
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    /// Versions checked.
    pub versions: usize,
    /// Each problem, naming the model version and blob.
    pub problems: Vec<String>,
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
        && names.contains(&"slipway.json")
        && v.files
            .iter()
            .all(|f| PACKAGE_FILES.contains(&f.name.as_str()) && hex(&f.sha256))
        && package_digest(&v.files) == v.digest;
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Corrupt(format!(
            "{}:{}: the registry's record of this version is damaged (digest or file list); restore registry.db from a backup or delete the version",
            v.model, v.version
        )))
    }
}

/// The first 12 characters of a digest, for display.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// A table of what a promotion compared.
pub fn format_checks(model: &str, version: u32, alias: &str, checks: &[Check]) -> String {
    let mut out = format!("promotion of {model}:{version} to @{alias} refused; nothing moved:\n");
    out.push_str(&format!(
        "  {:<36} {:>10} {:>10}  result\n",
        "gate", "candidate", "against"
    ));
    for c in checks {
        let fmt = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.4}"));
        out.push_str(&format!(
            "  {:<36} {:>10} {:>10}  {}\n",
            c.rule,
            fmt(c.candidate),
            fmt(c.against),
            if c.passed { "pass" } else { "FAIL" }
        ));
    }
    out.trim_end().to_string()
}

/// The registry's record inside an exported package tar.
const EXPORT_RECORD: &str = "registry.json";

impl Registry {
    /// Writes a version as a portable tar: its files plus `registry.json` (model, version,
    /// digest, file digests, description, tags). Written to a temporary file and renamed.
    pub fn export(&self, version: &VersionRecord, out: &Path) -> Result<()> {
        let io = |path: &Path, e: std::io::Error| RegistryError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        check_record(version)?;
        let tmp = out.with_extension(format!("partial.{}", std::process::id()));
        let written = (|| -> Result<()> {
            let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
            let mut builder = tar::Builder::new(file);
            let record = serde_json::json!({
                "model": version.model,
                "version": version.version,
                "digest": version.digest,
                "files": version.files,
                "description": version.description,
                "tags": version.tags,
            });
            let mut entries: Vec<(String, Vec<u8>)> = vec![(
                EXPORT_RECORD.into(),
                serde_json::to_vec_pretty(&record).unwrap_or_default(),
            )];
            for f in &version.files {
                let context = format!("{}:{} {}", version.model, version.version, f.name);
                entries.push((f.name.clone(), self.blobs.get(&f.sha256, &context)?));
            }
            for (name, bytes) in entries {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                builder
                    .append_data(&mut header, &name, bytes.as_slice())
                    .map_err(|e| io(&tmp, e))?;
            }
            let file = builder.into_inner().map_err(|e| io(&tmp, e))?;
            file.sync_all().map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, out).map_err(|e| io(out, e))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Registers a checked export (see [`read_export`]) as the next version of `name`
    /// (default: the exported model's name).
    pub fn import(
        &mut self,
        exported: Exported,
        name: Option<&str>,
        alias: Option<&str>,
        by: &str,
    ) -> Result<VersionRecord> {
        let Exported {
            record,
            contents,
            files,
            digest,
            manifest,
        } = exported;
        let name = name
            .map(str::to_string)
            .or_else(|| record["model"].as_str().map(str::to_string))
            .unwrap_or_default();
        check_name("model", &name)?;
        if let Some(a) = alias {
            check_name("alias", a)?;
        }
        self.check_stored_gates(&name, alias, &manifest)?;
        for f in &files {
            // read_export checked every file against this digest.
            self.blobs.put_hashed(&contents[&f.name], &f.sha256)?;
        }
        let tags = serde_json::from_value(record["tags"].clone()).unwrap_or_default();
        self.meta.insert_version(NewVersion {
            model: name,
            digest,
            manifest,
            files,
            description: record["description"].as_str().unwrap_or("").to_string(),
            tags,
            by: by.to_string(),
            alias: alias.map(str::to_string),
            action: "import".into(),
        })
    }
}

/// A package read from a `slipway export` tar, every file checked against its recorded digest.
#[derive(Debug, Clone)]
pub struct Exported {
    record: serde_json::Value,
    contents: BTreeMap<String, Vec<u8>>,
    files: Vec<FileEntry>,
    digest: String,
    manifest: serde_json::Value,
}

/// Reads and checks an export tar without touching any registry: a tar that fails a check is
/// refused before anything is stored.
pub fn read_export(tar_path: &Path) -> Result<Exported> {
    let file = std::fs::File::open(tar_path).map_err(|e| RegistryError::Io {
        path: tar_path.to_path_buf(),
        source: e,
    })?;
    let bad = |m: String| RegistryError::Corrupt(format!("{}: {m}", tar_path.display()));
    let mut archive = tar::Archive::new(file);
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("unreadable entry ({e})")))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if path != EXPORT_RECORD && !PACKAGE_FILES.contains(&path.as_str()) {
            return Err(bad(format!(
                "unexpected entry `{path}`; is this a `slipway export` tar?"
            )));
        }
        const MAX_ENTRY: u64 = 4 << 30;
        if entry.size() > MAX_ENTRY {
            return Err(bad(format!("entry `{path}` is larger than 4 GiB")));
        }
        if contents.contains_key(&path) {
            return Err(bad(format!("entry `{path}` appears twice")));
        }
        // Never trust the header's size for an allocation: read at most the cap.
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, MAX_ENTRY), &mut bytes)
            .map_err(|e| bad(format!("entry `{path}`: {e}")))?;
        contents.insert(path, bytes);
    }
    let record: serde_json::Value = contents
        .get(EXPORT_RECORD)
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or_else(|| {
            bad(format!(
                "no readable {EXPORT_RECORD}; is this a `slipway export` tar?"
            ))
        })?;
    let files: Vec<FileEntry> =
        serde_json::from_value(record["files"].clone()).map_err(|e| bad(e.to_string()))?;
    for f in &files {
        let bytes = contents
            .get(&f.name)
            .ok_or_else(|| bad(format!("`{}` is missing", f.name)))?;
        if sha256_hex(bytes) != f.sha256 {
            return Err(bad(format!(
                "`{}` does not match its recorded digest",
                f.name
            )));
        }
    }
    let digest = package_digest(&files);
    if record["digest"].as_str() != Some(digest.as_str()) {
        return Err(bad("the package digest does not match its files".into()));
    }
    let manifest_bytes = contents
        .get("slipway.json")
        .ok_or_else(|| bad("`slipway.json` is missing".into()))?;
    let parsed = slipway_core::Manifest::from_json(&String::from_utf8_lossy(manifest_bytes))
        .map_err(|e| bad(e.to_string()))?;
    let manifest: serde_json::Value =
        serde_json::from_slice(manifest_bytes).map_err(|e| bad(e.to_string()))?;
    // The same rules as a registration: the manifest and its payload are both among the
    // digested files, and the payload is the one the manifest names.
    let listed = |name: &str| files.iter().find(|f| f.name == name);
    let payload = listed(&parsed.payload.file);
    if listed("slipway.json").is_none() || payload.is_none_or(|p| p.sha256 != parsed.payload.sha256)
    {
        return Err(bad(
            "slipway.json and its payload must both be listed, with the digest the manifest gives"
                .into(),
        ));
    }
    Ok(Exported {
        record,
        contents,
        files,
        digest,
        manifest,
    })
}
