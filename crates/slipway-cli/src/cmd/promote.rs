//! `slipway promote` and `slipway rollback`: moving aliases, through gates.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde_json::json;
use slipway_registry::{Check, Promotion, Reference, Registry, RegistryError, VersionRecord};

use crate::cmd::registry::{RegistryPath, parse_gates, who};
use crate::output;

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
    /// The CSV's field delimiter, e.g. ';' or tab (default: read from the header line; a
    /// gzip-compressed file is read as it is).
    #[arg(long, value_parser = crate::cmd::delimiter, value_name = "CHAR", requires = "data")]
    pub delimiter: Option<u8>,
    /// The metric the candidate must beat the current version on, on --data.
    #[arg(long, value_name = "METRIC", requires = "data")]
    pub must_beat: Option<String>,
    /// Why (kept in the alias history).
    #[arg(long, default_value = "")]
    pub reason: String,
    #[command(flatten)]
    pub registry: RegistryPath,
    /// Print the result as one JSON object, for scripts and CI pipelines.
    #[arg(long)]
    pub json: bool,
}

/// One metric of a registered version (native or ONNX) on labelled data.
fn metric_on(
    registry: &Registry,
    version: &VersionRecord,
    data: &Path,
    delimiter: Option<u8>,
    metric: &str,
) -> Result<f64> {
    let dir = registry.materialize(version)?;
    let evaluation = slipway_runtime::evaluate(&dir, data, None, delimiter)?;
    evaluation.metric(metric).ok_or_else(|| {
        RegistryError::Invalid(format!(
            "metric `{metric}` is not defined for {}:{} on {}",
            version.model,
            version.version,
            data.display()
        ))
        .into()
    })
}

pub fn promote(args: PromoteArgs) -> Result<()> {
    let reference: Reference = args.reference.parse()?;
    let gates = parse_gates(&args.require)?;
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
        let ours = metric_on(&registry, &candidate, data, args.delimiter, metric)?;
        let check = match champion {
            Some(v) if v != candidate.version => {
                let record = registry.meta().version(&candidate.model, v)?;
                let theirs = metric_on(&registry, &record, data, args.delimiter, metric)?;
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
        if from == Some(candidate.version) {
            println!(
                "{}@{} already points at {}; nothing moved",
                candidate.model, args.alias, candidate.version
            );
        } else {
            println!(
                "{}@{}: {} → {}",
                candidate.model,
                args.alias,
                from.map_or("none".into(), |v| v.to_string()),
                candidate.version
            );
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct RollbackArgs {
    /// The model whose alias moves back, e.g. credit.
    pub model: String,
    /// The alias to move back to the version it pointed at before.
    #[arg(long)]
    pub alias: String,
    /// Why (kept in the alias history beside the move).
    #[arg(long, default_value = "")]
    pub reason: String,
    #[command(flatten)]
    pub registry: RegistryPath,
    /// Print the move as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn rollback(args: RollbackArgs) -> Result<()> {
    let mut registry = args.registry.open()?;
    let (from, to) = registry.rollback(&args.model, &args.alias, &who(), &args.reason)?;
    if args.json {
        output::print_json(
            &json!({ "model": args.model, "alias": args.alias, "from": from, "to": to }),
        );
    } else {
        println!("{}@{}: {from} → {to} (rolled back)", args.model, args.alias);
    }
    Ok(())
}
