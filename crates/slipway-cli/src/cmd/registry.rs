//! `slipway registry` (verify, audit), and what every registry command shares: where the
//! registry is, who is acting, packages named by folder or reference.
//!
//! The commands live one family per file: `models` (register, models), `promote` (promote,
//! rollback), `exchange` (export, import). They are re-exported here, where `main` finds them.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use slipway_registry::{Reference, Registry, RegistryError, printable};

pub use crate::cmd::exchange::{ExportArgs, ImportArgs, export, import};
pub use crate::cmd::models::{ModelsCommand, RegisterArgs, models, register};
pub use crate::cmd::promote::{PromoteArgs, RollbackArgs, promote, rollback};
use crate::output;

/// Where the registry lives.
#[derive(Args, Clone)]
pub struct RegistryPath {
    /// The registry folder (SQLite database + blob store), created on first use.
    #[arg(long = "registry", env = "SLIPWAY_REGISTRY", default_value = slipway_registry::DEFAULT_REGISTRY, value_name = "PATH")]
    pub path: PathBuf,
}

impl Default for RegistryPath {
    fn default() -> Self {
        RegistryPath {
            path: slipway_registry::DEFAULT_REGISTRY.into(),
        }
    }
}

impl RegistryPath {
    /// Opens an existing registry (every command but `register` and `import`).
    pub fn open(&self) -> Result<Registry> {
        Ok(Registry::open_existing(&self.path)?)
    }

    /// Opens the registry, creating it if needed (`register`, `import`).
    pub fn open_or_create(&self) -> Result<Registry> {
        Ok(Registry::open(&self.path)?)
    }
}

/// `--require` gates, each naming one of Slipway's metrics: a name it never records (`auc` for
/// `roc_auc`) is a mistake in the command (exit 2), not a model that failed the gate (exit 3).
pub fn parse_gates(require: &[String]) -> Result<Vec<slipway_registry::Gate>> {
    require
        .iter()
        .map(|text| {
            let gate: slipway_registry::Gate = text.parse()?;
            if !slipway_learn::metrics::METRIC_NAMES.contains(&gate.metric.as_str()) {
                return Err(slipway_registry::RegistryError::Invalid(format!(
                    "gate `{text}` names `{}`, which is not a metric Slipway records; metrics: {}",
                    slipway_registry::printable(&gate.metric),
                    slipway_learn::metrics::METRIC_NAMES.join(", ")
                ))
                .into());
            }
            Ok(gate)
        })
        .collect()
}

/// Who is acting, for the audit log: `SLIPWAY_USER`, else `USER`, else `LOGNAME`, else
/// `uid N@host`.
pub fn who() -> String {
    for var in ["SLIPWAY_USER", "USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
        {
            return name;
        }
    }
    // A container or CI job often sets no user name: the numeric user and the host still say
    // who it was.
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_else(|| "?".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("uid {uid}@{host}")
}

/// A package found by [`package_dir`]: its folder and, when it came from the registry, the
/// version it is.
pub struct Package {
    pub dir: PathBuf,
    pub version: Option<slipway_registry::VersionRecord>,
}

impl Package {
    /// How `models show` names it: `credit:3 (sha256 1a2b3c4d5e6f)` for a registered version,
    /// `package folder DIR` otherwise.
    pub fn id(&self) -> String {
        match &self.version {
            Some(v) => format!(
                "{}:{} (sha256 {})",
                v.model,
                v.version,
                slipway_registry::short(&v.digest)
            ),
            None => format!("package folder {}", self.dir.display()),
        }
    }

    /// The name a server serves it under: the registry's model name, or the package's own.
    pub fn served_name(&self, manifest: &slipway_core::Manifest) -> String {
        self.version
            .as_ref()
            .map_or_else(|| manifest.name.clone(), |v| v.model.clone())
    }
}

/// The folder of a package given as a folder or as a registry reference.
pub fn package_dir(model: &str, registry: &RegistryPath) -> Result<Package> {
    let path = Path::new(model);
    let folder = |dir: &Path| Package {
        dir: dir.to_path_buf(),
        version: None,
    };
    if path.exists() {
        return Ok(folder(path));
    }
    match model.parse::<Reference>() {
        Ok(reference) if !model.contains('/') => {
            // Not a folder here, so a registry reference. A bare name could have been either:
            // when neither is found, say both.
            let bare = !model.contains([':', '@']);
            let neither = |found: &str| {
                RegistryError::NotFound(format!(
                    "`{}` is no package folder here, and {found}: check the folder's path or the model's name",
                    printable(model)
                ))
            };
            let opened = registry.open().map_err(|e| match e.downcast::<RegistryError>() {
                Ok(RegistryError::NotFound(_)) if bare => neither(&format!(
                    "there is no registry at {} to look it up in (--registry / SLIPWAY_REGISTRY name one)",
                    registry.path.display()
                ))
                .into(),
                Ok(other) => other.into(),
                Err(other) => other,
            })?;
            let version = opened.resolve(&reference).map_err(|e| {
                if let RegistryError::NotFound(why) = &e
                    && bare
                {
                    neither(&format!("in {}: {why}", registry.path.display()))
                } else {
                    e
                }
            })?;
            Ok(Package {
                dir: opened.materialize(&version)?,
                version: Some(version),
            })
        }
        Ok(_) | Err(_) => Ok(folder(path)),
    }
}

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Check the database and every blob against its digest; exits 65 on any problem.
    Verify {
        #[command(flatten)]
        registry: RegistryPath,
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
    /// The audit log: registrations, promotions, rollbacks, deletions, imports.
    Audit {
        /// Show at most this many of the newest entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        registry: RegistryPath,
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
}

pub fn registry(command: RegistryCommand) -> Result<()> {
    match command {
        RegistryCommand::Verify { registry, json } => {
            let registry = registry.open()?;
            let report = registry.verify()?;
            let (problems, versions) = (report.problems, report.versions);
            if json {
                output::print_json(
                    &json!({ "ok": problems.is_empty(), "versions": versions, "problems": problems }),
                );
            } else if problems.is_empty() {
                println!(
                    "ok: {versions} version{}, every blob matches its digest and size, every manifest its package",
                    if versions == 1 { "" } else { "s" }
                );
            } else {
                for p in &problems {
                    println!("problem: {}", printable(p));
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(RegistryError::Corrupt(format!(
                    "{} problem(s) in {}",
                    problems.len(),
                    registry.root().display()
                ))
                .into())
            }
        }
        RegistryCommand::Audit {
            limit,
            registry,
            json,
        } => {
            let registry = registry.open()?;
            let entries = registry.meta().audit(limit)?;
            if json {
                output::print_json(&json!({ "audit": entries }));
                return Ok(());
            }
            for e in entries {
                let what = match (&e.model, e.version) {
                    (Some(m), Some(v)) => format!("{m}:{v}"),
                    (Some(m), None) => m.clone(),
                    (None, _) => String::new(),
                };
                println!(
                    "{:<24}  {:<10}  {:<9}  {:<20}  {}",
                    e.at,
                    printable(&e.by),
                    e.action,
                    what,
                    printable(&e.detail)
                );
            }
            Ok(())
        }
    }
}
