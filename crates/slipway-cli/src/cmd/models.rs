//! `slipway register` and `slipway models`: versions in, and what the registry holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use slipway_registry::{Reference, RegisterOptions, RegistryError, VersionRecord, printable};

use crate::cmd::registry::{RegistryPath, who};
use crate::output;

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
    /// What this version is, for people reading `models show` (e.g. "MLP 32x16, Q3 data").
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
    let described = !args.description.is_empty() || !tags.is_empty();
    let mut registry = args.registry.open_or_create()?;
    let registered = registry.register(
        &args.dir,
        &RegisterOptions {
            name: args.name.clone(),
            alias: args.alias.clone(),
            description: args.description,
            tags,
            by: who(),
        },
    )?;
    let (reused, v) = (registered.reused, registered.record);
    if args.json {
        let mut out = version_json(&v, None);
        out["reused"] = json!(reused);
        output::print_json(&out);
    } else {
        println!(
            "{} {}:{} (package {}…){}",
            if reused {
                "already registered as"
            } else {
                "registered"
            },
            v.model,
            v.version,
            slipway_registry::short(&v.digest),
            args.alias
                .map_or(String::new(), |a| format!("; @{a} → {}", v.version))
        );
        if reused {
            println!(
                "  the same package, apart from its training time: no new version (versions are content-addressed)"
            );
        }
    }
    if reused && described {
        eprintln!(
            "note: {}:{} keeps the description and tags it was registered with; versions do not change",
            v.model, v.version
        );
    }
    Ok(())
}

pub(crate) fn version_json(
    v: &VersionRecord,
    aliases: Option<&BTreeMap<String, u32>>,
) -> serde_json::Value {
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
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
    /// A model's versions, or one version (credit:3, credit@production) with metrics and lineage.
    Show {
        /// A model (credit) or one version: credit:3, credit@production.
        reference: String,
        #[command(flatten)]
        registry: RegistryPath,
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
    /// What a model's inputs are (kinds, categories, ranges seen in training) and an example
    /// request for V1 and V2 that works as printed.
    Example(crate::cmd::example::ExampleArgs),
    /// Every move of a model's aliases: who, when, from, to, why.
    History {
        /// The model, e.g. credit.
        model: String,
        #[command(flatten)]
        registry: RegistryPath,
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
    /// Show or set the gates every promotion to an alias must pass.
    Gates {
        /// The model, e.g. credit.
        model: String,
        /// The alias the gates guard, e.g. production.
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
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
    /// Delete a version (refused while an alias points at it).
    Delete {
        /// The version to delete: NAME:VERSION, e.g. credit:2.
        reference: String,
        #[command(flatten)]
        registry: RegistryPath,
        /// Print the result as one JSON object, for scripts and CI pipelines.
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
            // A package folder (not registered yet) shows what its manifest says.
            let folder = std::path::Path::new(&reference);
            if folder
                .join(slipway_core::manifest::files::MANIFEST)
                .is_file()
            {
                return show_folder(folder, json);
            }
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
                println!(
                    "model {} — {} version{}",
                    reference.model,
                    versions.len(),
                    if versions.len() == 1 { "" } else { "s" }
                );
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
        ModelsCommand::Example(args) => crate::cmd::example::run(args),
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
                let gates = super::registry::parse_gates(&require)?;
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

/// `models show FOLDER`: a package folder's manifest, as a registered version's is shown.
fn show_folder(folder: &std::path::Path, json: bool) -> Result<()> {
    let manifest = slipway_learn::package::read_manifest(folder)?;
    let m = serde_json::to_value(&manifest)?;
    if json {
        output::print_json(&json!({
            "package": folder.display().to_string(),
            "name": manifest.name,
            "registered": false,
            "payload": m["payload"],
            "metrics": m["metrics"],
            "task": m["task"],
            "lineage": m["lineage"],
            "params": m["params"],
            "signature": m["signature"],
        }));
        return Ok(());
    }
    println!(
        "{} (package folder `{}`, not registered)",
        printable(&manifest.name),
        folder.display()
    );
    println!(
        "  payload      {} (sha256 {})",
        printable(&manifest.payload.file),
        manifest.payload.sha256
    );
    print_manifest(&m);
    Ok(())
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
        println!("  description  {}", printable(&v.description));
    }
    for (k, t) in &v.tags {
        println!("  tag          {}={}", printable(k), printable(t));
    }
    print_manifest(&v.manifest);
}

/// What a manifest says: task, lineage, metrics, signature.
fn print_manifest(m: &serde_json::Value) {
    println!(
        "  task         {}  ({} model)",
        printable(m["task"].as_str().unwrap_or("?")),
        printable(m["model"]["kind"].as_str().unwrap_or("?"))
    );
    let l = &m["lineage"];
    if let Some(o) = m["model"].get("onnx") {
        println!(
            "  onnx         {} · features {}",
            printable(o["producer"].as_str().unwrap_or("?")),
            o["features"].as_array().map_or(0, Vec::len)
        );
        println!(
            "  lineage      imported {}",
            l["created_at"].as_str().unwrap_or("?")
        );
    } else {
        println!(
            "  lineage      {} (sha256 {}…), {} rows, seed {}, slipway {}",
            printable(l["dataset"].as_str().unwrap_or("?")),
            l["dataset_sha256"]
                .as_str()
                .unwrap_or("")
                .get(..12)
                .unwrap_or(""),
            l["rows"],
            l["seed"],
            printable(l["slipway_version"].as_str().unwrap_or("?"))
        );
    }
    println!(
        "  metrics ({})",
        m["evaluated_on"].as_str().unwrap_or("test")
    );
    if let Some(metrics) = m["metrics"].as_object() {
        for (k, val) in metrics {
            println!(
                "    {:<12} {:.4}",
                printable(k),
                val.as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    println!("  signature");
    for (dir, key) in [("in ", "inputs"), ("out", "outputs")] {
        if let Some(list) = m["signature"][key].as_array() {
            for t in list {
                println!(
                    "    {dir} {:<40} {:<6} {}",
                    printable(t["name"].as_str().unwrap_or("?")),
                    printable(t["datatype"].as_str().unwrap_or("?")),
                    t["shape"]
                );
            }
        }
    }
}
