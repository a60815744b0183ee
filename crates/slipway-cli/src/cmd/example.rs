//! `slipway models example REF`: what a model wants, and a request that works — its columns
//! with what training saw of them, and `curl` commands for V1 and V2 (or one body alone, to
//! pipe into `curl -d @-`).

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::json;
use slipway_core::{Manifest, Task};
use slipway_registry::printable;
use slipway_runtime::example::{ColumnKind, Example, example};

use crate::cmd::registry::{RegistryPath, package_dir};
use crate::output;

/// A protocol whose request body `--body` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// KServe V1 records: `{"instances": [{column: value, …}]}`.
    V1,
    /// Open Inference Protocol v2 tensors: `{"inputs": [...]}`.
    V2,
}

#[derive(Args)]
pub struct ExampleArgs {
    /// A model (credit, the latest version), one version (credit:3, credit@production) or a
    /// package folder.
    pub reference: String,
    /// Print only this protocol's request body, e.g. for `curl -d @-`.
    #[arg(long, value_enum)]
    pub body: Option<Protocol>,
    /// The server the printed commands call.
    #[arg(long, default_value = "http://localhost:8080")]
    pub url: String,
    #[command(flatten)]
    pub registry: RegistryPath,
    /// Print the columns and both requests as one JSON object, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ExampleArgs) -> Result<()> {
    let package = package_dir(&args.reference, &args.registry)?;
    let manifest = slipway_learn::package::read_manifest(&package.dir)?;
    let served = package.served_name(&manifest);
    let ex = example(&manifest);
    match args.body {
        Some(Protocol::V1) => println!("{}", ex.v1),
        Some(Protocol::V2) => println!("{}", ex.v2),
        None if args.json => output::print_json(&json!({
            "model": served,
            "version": package.version.as_ref().map(|v| v.version),
            "task": manifest.task,
            "classes": manifest.target.classes,
            "positive_class": manifest.target.positive_class,
            "columns": ex.columns,
            "v1": ex.v1,
            "v2": ex.v2,
        })),
        None => print_text(&package.id(), &served, &manifest, &ex, &args.url),
    }
    Ok(())
}

fn print_text(id: &str, served: &str, m: &Manifest, ex: &Example, url: &str) {
    let what = match m.task {
        Task::BinaryClassification => format!(
            "binary classification ({}); `probability` is that of `{}`",
            m.target.classes.join(", "),
            m.target.classes.get(1).map_or("", String::as_str)
        ),
        Task::MulticlassClassification => format!(
            "multiclass classification; `probabilities` in the order {}",
            m.target.classes.join(", ")
        ),
        Task::Regression => format!("regression of `{}`", m.target.name),
    };
    println!(
        "{} — {what}; {} input column{}",
        id,
        ex.columns.len(),
        if ex.columns.len() == 1 { "" } else { "s" }
    );
    println!();
    let width = ex
        .columns
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("  {:<width$}  {:<8}  seen in training", "column", "kind");
    for c in &ex.columns {
        let (kind, seen) = match &c.kind {
            ColumnKind::Number { min, median, max } => (
                "number",
                match (min, median, max) {
                    (Some(lo), Some(mid), Some(hi)) => {
                        format!("{} … {} (median {})", num(*lo), num(*hi), num(*mid))
                    }
                    (Some(_) | None, Some(_) | None, Some(_) | None) => "—".into(),
                },
            ),
            ColumnKind::Category {
                categories, more, ..
            } => {
                let mut list = categories
                    .iter()
                    .map(|c| printable(c).to_string())
                    .collect::<Vec<_>>()
                    .join(" | ");
                if *more > 0 {
                    list.push_str(&format!(" | … {more} more"));
                }
                ("category", list)
            }
            ColumnKind::Integer => ("integer", "—".into()),
            ColumnKind::Text => ("text", "—".into()),
            ColumnKind::Bool => ("bool", "true | false".into()),
        };
        println!("  {:<width$}  {kind:<8}  {seen}", printable(&c.name));
    }
    if m.features.is_empty() {
        println!(
            "  (an imported graph without a profile: its example values are zeros, not typical values)"
        );
    }
    let url = url.trim_end_matches('/');
    println!();
    println!(
        "V1, records by column name (a column left out is a missing value, where the model takes one):"
    );
    println!(
        "  curl -s {url}/v1/models/{served}:predict -H 'Content-Type: application/json' -d '{}'",
        quoted(&ex.v1)
    );
    println!();
    println!("V2, tensors (tritonclient, KServe's clients):");
    println!(
        "  curl -s {url}/v2/models/{served}/infer -H 'Content-Type: application/json' -d '{}'",
        quoted(&ex.v2)
    );
}

/// A number as people write it: no trailing zeros, at most six significant digits.
fn num(x: f64) -> String {
    let short: f64 = format!("{x:.5e}").parse().unwrap_or(x);
    short.to_string()
}

/// `value` as JSON inside single quotes in a POSIX shell.
fn quoted(value: &serde_json::Value) -> String {
    value.to_string().replace('\'', r"'\''")
}
