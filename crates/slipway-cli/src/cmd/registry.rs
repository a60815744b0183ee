//! `slipway register`, `models`, `promote`, `rollback` and `registry`: the model registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use slipway_learn::package::NativeModel;
use slipway_learn::{dataset, pipeline, train};
use slipway_registry::{
    Check, Gate, Promotion, Reference, RegisterOptions, Registry, RegistryError, VersionRecord,
};

use crate::output;

/// Where the registry lives.
#[derive(Args, Clone)]
pub struct RegistryPath {
    /// The registry folder (SQLite database + blob store), created on first use.
    #[arg(long = "registry", env = "SLIPWAY_REGISTRY", default_value = slipway_registry::DEFAULT_REGISTRY, value_name = "PATH")]
    pub path: PathBuf,
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

/// Who is acting, for the audit log: `SLIPWAY_USER`, else `USER`.
pub fn who() -> String {
    std::env::var("SLIPWAY_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The folder of a package given as a folder or as a registry reference.
pub fn package_dir(model: &str, registry: &RegistryPath) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    match model.parse::<Reference>() {
        Ok(reference) if !model.contains('/') => {
            let registry = registry.open()?;
            let version = registry.resolve(&reference)?;
            Ok(registry.materialize(&version)?)
        }
        Ok(_) | Err(_) => Ok(path.to_path_buf()),
    }
}

#[derive(Args)]
pub struct RegisterArgs {
    /// The package folder (from `slipway train --out DIR`).
    pub dir: PathBuf,
    /// The model's name in the registry.
    #[arg(long)]
    pub name: String,
    /// Point this alias (e.g. staging) at the new version.
    #[arg(long)]
    pub alias: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
    /// A tag KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryPath,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn register(args: RegisterArgs) -> Result<()> {
    let mut tags = BTreeMap::new();
    for t in &args.tags {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| RegistryError::Invalid(format!("tag `{t}` is not KEY=VALUE")))?;
        tags.insert(k.trim().to_string(), v.trim().to_string());
    }
    let mut registry = args.registry.open_or_create()?;
    let v = registry.register(
        &args.dir,
        &RegisterOptions {
            name: args.name.clone(),
            alias: args.alias.clone(),
            description: args.description,
            tags,
            by: who(),
        },
    )?;
    if args.json {
        output::print_json(&version_json(&v, None));
    } else {
        println!(
            "registered {}:{} (package {}…){}",
            v.model,
            v.version,
            slipway_registry::short(&v.digest),
            args.alias
                .map_or(String::new(), |a| format!("; @{a} → {}", v.version))
        );
    }
    Ok(())
}

fn version_json(v: &VersionRecord, aliases: Option<&BTreeMap<String, u32>>) -> serde_json::Value {
    let mut value = json!({
        "model": v.model,
        "version": v.version,
        "reference": format!("{}:{}", v.model, v.version),
        "digest": v.digest,
        "description": v.description,
        "tags": v.tags,
        "created_at": v.created_at,
        "created_by": v.created_by,
        "files": v.files,
        "metrics": v.manifest.get("metrics"),
        "task": v.manifest.get("task"),
        "lineage": v.manifest.get("lineage"),
        "params": v.manifest.get("params"),
        "signature": v.manifest.get("signature"),
    });
    if let Some(aliases) = aliases {
        let here: Vec<&String> = aliases
            .iter()
            .filter(|(_, n)| **n == v.version)
            .map(|(a, _)| a)
            .collect();
        value["aliases"] = json!(here);
    }
    value
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Every model with its versions and aliases.
    List {
        #[command(flatten)]
        registry: RegistryPath,
        #[arg(long)]
        json: bool,
    },
    /// A model's versions, or one version (credit:3, credit@production) with metrics and lineage.
    Show {
        reference: String,
        #[command(flatten)]
        registry: RegistryPath,
        #[arg(long)]
        json: bool,
    },
    /// Every move of a model's aliases: who, when, from, to, why.
    History {
        model: String,
        #[command(flatten)]
        registry: RegistryPath,
        #[arg(long)]
        json: bool,
    },
    /// Show or set the gates every promotion to an alias must pass.
    Gates {
        model: String,
        #[arg(long)]
        alias: String,
        /// A gate such as 'roc_auc>=0.75' (repeatable); replaces the stored ones.
        #[arg(long = "require", value_name = "GATE")]
        require: Vec<String>,
        /// Remove the stored gates.
        #[arg(long, conflicts_with = "require")]
        clear: bool,
        #[command(flatten)]
        registry: RegistryPath,
        #[arg(long)]
        json: bool,
    },
    /// Delete a version (refused while an alias points at it).
    Delete {
        reference: String,
        #[command(flatten)]
        registry: RegistryPath,
        #[arg(long)]
        json: bool,
    },
}

pub fn models(command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::List { registry, json } => {
            let registry = registry.open()?;
            let models = registry.meta().list_models()?;
            if json {
                output::print_json(&json!({ "models": models }));
                return Ok(());
            }
            if models.is_empty() {
                println!("no models yet; add one with `slipway register DIR --name NAME`");
                return Ok(());
            }
            let width = models
                .iter()
                .map(|m| m.name.len())
                .max()
                .unwrap_or(5)
                .max(5);
            println!(
                "{:<width$}  {:>8}  {:>6}  aliases",
                "model", "versions", "latest"
            );
            for m in models {
                let aliases: Vec<String> =
                    m.aliases.iter().map(|(a, v)| format!("@{a}→{v}")).collect();
                println!(
                    "{:<width$}  {:>8}  {:>6}  {}",
                    m.name,
                    m.versions,
                    m.latest,
                    aliases.join(" ")
                );
            }
            Ok(())
        }
        ModelsCommand::Show {
            reference,
            registry,
            json,
        } => {
            let reference: Reference = reference.parse()?;
            let registry = registry.open()?;
            let aliases = registry.meta().aliases(&reference.model)?;
            if reference.selector == slipway_registry::Selector::Latest {
                let versions = registry.meta().versions(&reference.model)?;
                if json {
                    let list: Vec<_> = versions
                        .iter()
                        .map(|v| version_json(v, Some(&aliases)))
                        .collect();
                    output::print_json(
                        &json!({ "model": reference.model, "aliases": aliases, "versions": list }),
                    );
                    return Ok(());
                }
                println!("model {} — {} versions", reference.model, versions.len());
                println!(
                    "  {:>7}  {:<24}  {:<10}  {:>8}  {:<12}  aliases",
                    "version", "created", "by", "roc_auc", "digest"
                );
                for v in &versions {
                    let here: Vec<String> = aliases
                        .iter()
                        .filter(|(_, n)| **n == v.version)
                        .map(|(a, _)| format!("@{a}"))
                        .collect();
                    let metric = v.manifest["metrics"]
                        .get("roc_auc")
                        .or_else(|| v.manifest["metrics"].get("r2"));
                    println!(
                        "  {:>7}  {:<24}  {:<10}  {:>8}  {:<12}  {}",
                        v.version,
                        v.created_at,
                        v.created_by,
                        metric
                            .and_then(serde_json::Value::as_f64)
                            .map_or("—".into(), |m| format!("{m:.4}")),
                        slipway_registry::short(&v.digest),
                        here.join(" ")
                    );
                }
                return Ok(());
            }
            let v = registry.resolve(&reference)?;
            if json {
                output::print_json(&version_json(&v, Some(&aliases)));
                return Ok(());
            }
            print_version(&v, &aliases);
            Ok(())
        }
        ModelsCommand::History {
            model,
            registry,
            json,
        } => {
            let registry = registry.open()?;
            let history = registry.meta().alias_history(&model)?;
            if json {
                output::print_json(&json!({ "model": model, "history": history }));
                return Ok(());
            }
            println!(
                "{:<24}  {:<10}  {:<12}  {:>4} → {:<4}  {:<9}  reason",
                "when", "by", "alias", "from", "to", "action"
            );
            for m in history {
                let v = |x: Option<u32>| x.map_or("—".into(), |v| v.to_string());
                println!(
                    "{:<24}  {:<10}  {:<12}  {:>4} → {:<4}  {:<9}  {}",
                    m.at,
                    m.by,
                    format!("@{}", m.alias),
                    v(m.from),
                    v(m.to),
                    m.action,
                    m.reason
                );
            }
            Ok(())
        }
        ModelsCommand::Gates {
            model,
            alias,
            require,
            clear,
            registry,
            json,
        } => {
            let mut registry = registry.open()?;
            if clear || !require.is_empty() {
                let gates = require
                    .iter()
                    .map(|g| g.parse::<Gate>())
                    .collect::<Result<Vec<_>, _>>()?;
                registry.set_gates(&model, &alias, &gates, &who())?;
            }
            let gates = registry.meta().gates(&model, &alias)?;
            if json {
                output::print_json(&json!({ "model": model, "alias": alias, "gates": gates }));
            } else if gates.is_empty() {
                println!("{model}@{alias}: no stored gates");
            } else {
                println!("{model}@{alias} requires: {}", gates.join(", "));
            }
            Ok(())
        }
        ModelsCommand::Delete {
            reference,
            registry,
            json,
        } => {
            let reference: Reference = reference.parse()?;
            let slipway_registry::Selector::Version(version) = reference.selector else {
                return Err(RegistryError::Invalid(format!(
                    "delete one version at a time: write {}:VERSION",
                    reference.model
                ))
                .into());
            };
            let mut registry = registry.open()?;
            registry.delete(&reference.model, version, &who())?;
            if json {
                output::print_json(&json!({ "deleted": format!("{}:{version}", reference.model) }));
            } else {
                println!("deleted {}:{version}", reference.model);
            }
            Ok(())
        }
    }
}

fn print_version(v: &VersionRecord, aliases: &BTreeMap<String, u32>) {
    let here: Vec<String> = aliases
        .iter()
        .filter(|(_, n)| **n == v.version)
        .map(|(a, _)| format!("@{a}"))
        .collect();
    println!("{}:{}  {}", v.model, v.version, here.join(" "));
    println!("  digest       {}", v.digest);
    println!("  created      {} by {}", v.created_at, v.created_by);
    if !v.description.is_empty() {
        println!("  description  {}", v.description);
    }
    for (k, t) in &v.tags {
        println!("  tag          {k}={t}");
    }
    let m = &v.manifest;
    println!(
        "  task         {}  ({} model)",
        m["task"].as_str().unwrap_or("?"),
        m["model"]["kind"].as_str().unwrap_or("?")
    );
    let l = &m["lineage"];
    if let Some(o) = m["model"].get("onnx") {
        println!(
            "  onnx         {} · features {}",
            o["producer"].as_str().unwrap_or("?"),
            o["features"].as_array().map_or(0, Vec::len)
        );
        println!(
            "  lineage      imported {}",
            l["created_at"].as_str().unwrap_or("?")
        );
    } else {
        println!(
            "  lineage      {} (sha256 {}…), {} rows, seed {}, slipway {}",
            l["dataset"].as_str().unwrap_or("?"),
            l["dataset_sha256"]
                .as_str()
                .unwrap_or("")
                .get(..12)
                .unwrap_or(""),
            l["rows"],
            l["seed"],
            l["slipway_version"].as_str().unwrap_or("?")
        );
    }
    println!(
        "  metrics ({})",
        m["evaluated_on"].as_str().unwrap_or("test")
    );
    if let Some(metrics) = m["metrics"].as_object() {
        for (k, val) in metrics {
            println!("    {k:<12} {:.4}", val.as_f64().unwrap_or(f64::NAN));
        }
    }
    println!("  signature");
    for (dir, key) in [("in ", "inputs"), ("out", "outputs")] {
        if let Some(list) = m["signature"][key].as_array() {
            for t in list {
                println!(
                    "    {dir} {:<40} {:<6} {}",
                    t["name"].as_str().unwrap_or("?"),
                    t["datatype"].as_str().unwrap_or("?"),
                    t["shape"]
                );
            }
        }
    }
}

#[derive(Args)]
pub struct PromoteArgs {
    /// The version to promote: NAME:VERSION (or NAME@ALIAS).
    pub reference: String,
    /// The alias to point at it (production, staging, champion, …).
    #[arg(long = "to")]
    pub alias: String,
    /// A gate on the version's recorded metrics, e.g. 'roc_auc>=0.75' (repeatable).
    #[arg(long = "require", value_name = "GATE")]
    pub require: Vec<String>,
    /// Labelled data for a champion/challenger check against the alias's current version.
    #[arg(long, value_name = "F.csv", requires = "must_beat")]
    pub data: Option<PathBuf>,
    /// The metric the candidate must beat the current version on, on --data.
    #[arg(long, value_name = "METRIC", requires = "data")]
    pub must_beat: Option<String>,
    /// Why (kept in the alias history).
    #[arg(long, default_value = "")]
    pub reason: String,
    #[command(flatten)]
    pub registry: RegistryPath,
    #[arg(long)]
    pub json: bool,
}

/// One metric of a package on labelled data.
fn metric_on(model: &NativeModel, data: &Path, metric: &str) -> Result<f64> {
    let m = &model.manifest;
    let ds = dataset::load_for_model(data, &m.features, &m.target.name, &m.target.classes)?;
    let rows = ds.rows();
    let (x, _) = pipeline::transform(&m.features, &ds.frame, &rows)?;
    let report = train::evaluate(
        model.forward(x.view()).view(),
        &ds.target,
        &rows,
        model.threshold(),
    );
    report.get(metric).filter(|v| v.is_finite()).ok_or_else(|| {
        RegistryError::Invalid(format!(
            "metric `{metric}` is not defined for this model on {}",
            data.display()
        ))
        .into()
    })
}

pub fn promote(args: PromoteArgs) -> Result<()> {
    let reference: Reference = args.reference.parse()?;
    let gates = args
        .require
        .iter()
        .map(|g| g.parse::<Gate>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut registry = args.registry.open()?;
    let candidate = registry.resolve(&reference)?;
    let mut extra = Vec::new();
    if let (Some(data), Some(metric)) = (&args.data, &args.must_beat) {
        let higher = slipway_learn::metrics::higher_is_better(metric).ok_or_else(|| {
            RegistryError::Invalid(format!(
                "unknown metric `{metric}`; metrics: {}",
                slipway_learn::metrics::METRIC_NAMES.join(", ")
            ))
        })?;
        let champion = registry
            .meta()
            .aliases(&candidate.model)?
            .get(&args.alias)
            .copied();
        let challenger = NativeModel::load(&registry.materialize(&candidate)?)?;
        let ours = metric_on(&challenger, data, metric)?;
        let check = match champion {
            Some(v) if v != candidate.version => {
                let record = registry.meta().version(&candidate.model, v)?;
                let theirs = metric_on(
                    &NativeModel::load(&registry.materialize(&record)?)?,
                    data,
                    metric,
                )?;
                let passed = if higher { ours > theirs } else { ours < theirs };
                Check {
                    rule: format!(
                        "{metric} beats {}:{v} on {}",
                        candidate.model,
                        data.display()
                    ),
                    candidate: Some(ours),
                    against: Some(theirs),
                    passed,
                }
            }
            Some(_) | None => Check {
                rule: format!(
                    "{metric} on {} (no champion at @{})",
                    data.display(),
                    args.alias
                ),
                candidate: Some(ours),
                against: None,
                passed: true,
            },
        };
        extra.push(check);
    }
    let (checks, from) = registry.promote(&Promotion {
        model: candidate.model.clone(),
        version: candidate.version,
        alias: args.alias.clone(),
        gates,
        extra_checks: extra,
        by: who(),
        reason: args.reason.clone(),
    })?;
    if args.json {
        output::print_json(&json!({
            "model": candidate.model,
            "alias": args.alias,
            "from": from,
            "to": candidate.version,
            "checks": checks,
        }));
    } else {
        for c in &checks {
            println!("  pass  {}", c.rule);
        }
        println!(
            "{}@{}: {} → {}",
            candidate.model,
            args.alias,
            from.map_or("none".into(), |v| v.to_string()),
            candidate.version
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct RollbackArgs {
    pub model: String,
    /// The alias to move back to the version it pointed at before.
    #[arg(long)]
    pub alias: String,
    #[command(flatten)]
    pub registry: RegistryPath,
    #[arg(long)]
    pub json: bool,
}

pub fn rollback(args: RollbackArgs) -> Result<()> {
    let mut registry = args.registry.open()?;
    let (from, to) = registry.rollback(&args.model, &args.alias, &who())?;
    if args.json {
        output::print_json(
            &json!({ "model": args.model, "alias": args.alias, "from": from, "to": to }),
        );
    } else {
        println!("{}@{}: {from} → {to} (rolled back)", args.model, args.alias);
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Check the database and every blob against its digest; exits 65 on any problem.
    Verify {
        #[command(flatten)]
        registry: RegistryPath,
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
                println!("ok: {versions} versions, every blob matches its digest");
            } else {
                for p in &problems {
                    println!("problem: {p}");
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
                    e.at, e.by, e.action, what, e.detail
                );
            }
            Ok(())
        }
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// The version to export: NAME:VERSION or NAME@ALIAS.
    pub reference: String,
    /// The tar to write.
    #[arg(long, value_name = "F.tar")]
    pub out: PathBuf,
    #[command(flatten)]
    pub registry: RegistryPath,
    #[arg(long)]
    pub json: bool,
}

pub fn export(args: ExportArgs) -> Result<()> {
    let reference: Reference = args.reference.parse()?;
    let registry = args.registry.open()?;
    let v = registry.resolve(&reference)?;
    registry.export(&v, &args.out)?;
    if args.json {
        output::print_json(
            &json!({ "model": v.model, "version": v.version, "digest": v.digest, "out": args.out.display().to_string() }),
        );
    } else {
        println!(
            "exported {}:{} (package {}…) to {}",
            v.model,
            v.version,
            slipway_registry::short(&v.digest),
            args.out.display()
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct ImportArgs {
    /// A tar written by `slipway export`, or an ONNX model (`.onnx`) from PyTorch,
    /// scikit-learn (skl2onnx), XGBoost or LightGBM (onnxmltools), TensorFlow (tf2onnx)…
    pub file: PathBuf,
    /// Register under this name (default: the exported model's name, or the .onnx file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// ONNX: the CSV columns that fill the graph's matrix input, in order (comma-separated).
    /// Default: the graph's input names when it has one input per column, else f0, f1, ….
    #[arg(long, value_name = "A,B,C", help_heading = "ONNX models")]
    pub features: Option<String>,
    /// ONNX: take the feature columns from this CSV's header (all but the target).
    #[arg(
        long,
        value_name = "F.csv",
        conflicts_with = "features",
        help_heading = "ONNX models"
    )]
    pub features_from: Option<PathBuf>,
    /// ONNX: labelled data (with the feature columns and the target) to evaluate on before
    /// registering; its metrics are recorded, so gates such as `roc_auc>=0.75` can check them.
    /// Its header also names the features when --features is not given.
    #[arg(long, value_name = "F.csv", help_heading = "ONNX models")]
    pub data: Option<PathBuf>,
    /// ONNX: the target column's name, for `slipway eval` (default: target).
    #[arg(long, help_heading = "ONNX models")]
    pub target: Option<String>,
    /// ONNX: binary, multiclass or regression (default: from the graph's classes).
    #[arg(long, value_parser = ["binary", "multiclass", "regression"], help_heading = "ONNX models")]
    pub task: Option<String>,
    /// ONNX: class labels in score-column order, when the graph does not name them.
    #[arg(long, value_name = "A,B", help_heading = "ONNX models")]
    pub classes: Option<String>,
    /// ONNX: the output holding probabilities or predictions (default: the first FP32/FP64 one).
    #[arg(long, value_name = "NAME", help_heading = "ONNX models")]
    pub scores_output: Option<String>,
    /// ONNX: the output holding labels (default: the first BYTES/INT64 one).
    #[arg(long, value_name = "NAME", help_heading = "ONNX models")]
    pub label_output: Option<String>,
    /// ONNX: override an input's shape, e.g. `input=-1,6` to make the batch dimension of a
    /// graph exported with batch 1 variable (repeatable).
    #[arg(
        long = "input-shape",
        value_name = "NAME=D,D",
        help_heading = "ONNX models"
    )]
    pub input_shapes: Vec<String>,
    /// ONNX, binary: the decision threshold (default 0.5).
    #[arg(long, value_parser = crate::cmd::threshold, help_heading = "ONNX models")]
    pub threshold: Option<f64>,
    /// Point this alias at the imported version.
    #[arg(long)]
    pub alias: Option<String>,
    #[command(flatten)]
    pub registry: RegistryPath,
    #[arg(long)]
    pub json: bool,
}

pub fn import(args: ImportArgs) -> Result<()> {
    if args.file.extension().is_some_and(|e| e == "onnx") {
        return crate::cmd::onnx::import(args);
    }
    let is_tar = args.file.extension().is_some_and(|e| e == "tar");
    if !is_tar {
        return Err(RegistryError::Invalid(format!(
            "{}: import takes a .tar written by `slipway export` or an ONNX model (.onnx)",
            args.file.display()
        ))
        .into());
    }
    // Check the tar first: a bad one creates or changes nothing.
    let exported = slipway_registry::read_export(&args.file)?;
    let mut registry = args.registry.open_or_create()?;
    let v = registry.import(
        exported,
        args.name.as_deref(),
        args.alias.as_deref(),
        &who(),
    )?;
    if args.json {
        output::print_json(&version_json(&v, None));
    } else {
        println!(
            "imported {} as {}:{} (package {}…)",
            args.file.display(),
            v.model,
            v.version,
            slipway_registry::short(&v.digest)
        );
    }
    Ok(())
}
