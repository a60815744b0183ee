//! `slipway eval`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use slipway_learn::{dataset, pipeline, train};

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
    /// Probability at or above which a binary prediction is the positive class (default: the
    /// one the package was trained with, 0.5 unless `train --threshold` said otherwise).
    #[arg(long, value_parser = crate::cmd::threshold)]
    pub threshold: Option<f64>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let dir = crate::cmd::registry::package_dir(&args.model, &args.registry)?;
    if crate::cmd::onnx::is_onnx(&dir) {
        return crate::cmd::onnx::eval(&dir, &args.model, &args.data, args.threshold, args.json);
    }
    let model = slipway_learn::package::NativeModel::load(&dir)?;
    let m = &model.manifest;
    let data = dataset::load_for_model(&args.data, &m.features, &m.target.name, &m.target.classes)?;
    let rows = data.rows();
    let (x, unseen) = pipeline::transform(&m.features, &data.frame, &rows)?;
    let out = model.forward(x.view());
    let threshold = args.threshold.unwrap_or_else(|| model.threshold());
    let report = train::evaluate(out.view(), &data.target, &rows, threshold);
    if args.json {
        output::print_json(&json!({
            "package": args.model,
            "data": args.data.display().to_string(),
            "rows": rows.len(),
            "dropped_missing_target": data.rows_dropped,
            "unseen_categories": unseen,
            "metrics": report.scalars(),
            "report": report,
        }));
        return Ok(());
    }
    if data.rows_dropped > 0 {
        eprintln!(
            "warning: dropped {} rows whose target `{}` is missing",
            data.rows_dropped, m.target.name
        );
    }
    if unseen > 0 {
        eprintln!(
            "note: {unseen} cells held a category not seen in training; they were encoded as all zeros"
        );
    }
    println!(
        "{} `{}` ({}, {}) on {}: {} rows\n",
        m.model.kind,
        m.name,
        m.task,
        &m.payload.sha256[..12],
        args.data.display(),
        rows.len()
    );
    print!(
        "{}",
        output::report_text(&report, m.target.positive_class.as_deref())
    );
    Ok(())
}
