//! `slipway eval`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use slipway_registry::printable;

use crate::output;

#[derive(Args)]
pub struct EvalArgs {
    /// The package: a folder, or a registry reference (credit@production, credit:3).
    #[arg(long, value_name = "DIR|REF")]
    pub model: String,
    #[command(flatten)]
    pub registry: crate::cmd::registry::RegistryPath,
    /// Labelled data: a CSV with the model's feature columns and its target column.
    #[arg(long, value_name = "F.csv")]
    pub data: PathBuf,
    /// The CSV's field delimiter, e.g. ';' or tab (default: read from the header line; a
    /// gzip-compressed file is read as it is).
    #[arg(long, value_parser = crate::cmd::delimiter, value_name = "CHAR")]
    pub delimiter: Option<u8>,
    /// Probability at or above which a binary prediction is the positive class (default: the
    /// one the package was trained with, 0.5 unless `train --threshold` said otherwise).
    #[arg(long, value_parser = crate::cmd::threshold)]
    pub threshold: Option<f64>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let package = crate::cmd::registry::package_dir(&args.model, &args.registry)?;
    let e = slipway_runtime::evaluate(&package.dir, &args.data, args.threshold, args.delimiter)?;
    let m = &e.manifest;
    // The package records the SHA-256 of the file it was trained on: evaluating on that file
    // scores the model on rows it learned from, which flatters it.
    let trained_on_it =
        !m.lineage.dataset_sha256.is_empty() && m.lineage.dataset_sha256 == e.dataset_sha256;
    if args.json {
        output::print_json(&json!({
            "package": args.model,
            "model": package.version.as_ref().map_or(&m.name, |v| &v.model),
            "version": package.version.as_ref().map(|v| v.version),
            "digest": package.version.as_ref().map(|v| &v.digest),
            "data": args.data.display().to_string(),
            "rows": e.rows,
            "dropped_missing_target": e.rows_dropped,
            "unseen_categories": e.unseen_categories,
            "trained_on_this_data": trained_on_it,
            "held_out_metrics": m.metrics,
            "metrics": e.report.scalars(),
            "report": e.report,
        }));
        return Ok(());
    }
    if trained_on_it {
        let held_out: Vec<String> = ["roc_auc", "accuracy", "r2", "rmse", "macro_f1"]
            .iter()
            .filter_map(|k| m.metrics.get(*k).map(|v| format!("{k} {v:.4}")))
            .collect();
        eprintln!(
            "warning: {} is the file `{}` was trained on (same SHA-256), so these figures include rows it learned from and flatter it. Its held-out figures, recorded at training ({}): {}. For an honest figure, evaluate on rows it has not seen: a held-out file, or train with --test-data F.csv.",
            args.data.display(),
            printable(&m.name),
            printable(&m.evaluated_on),
            if held_out.is_empty() {
                "none".to_string()
            } else {
                held_out.join(", ")
            }
        );
    }
    if e.rows_dropped > 0 {
        eprintln!(
            "warning: dropped {} rows whose target `{}` is missing",
            e.rows_dropped,
            printable(&m.target.name)
        );
    }
    if e.unseen_categories > 0 {
        eprintln!(
            "note: {} cells held a category not seen in training; they were encoded as all zeros",
            e.unseen_categories
        );
    }
    println!(
        "{} — {} {} model — on {}: {} rows\n",
        package.id(),
        m.task,
        printable(&m.model.kind),
        args.data.display(),
        e.rows
    );
    print!(
        "{}",
        output::report_text(&e.report, m.target.positive_class.as_deref())
    );
    Ok(())
}
