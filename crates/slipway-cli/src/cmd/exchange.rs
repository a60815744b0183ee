//! `slipway export` and `slipway import`: a version to and from a portable tar, and ONNX
//! models from any framework into the registry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use slipway_core::Task;
use slipway_learn::LearnError;
use slipway_registry::{Reference, RegisterOptions, RegistryError, printable};
use slipway_runtime::{OnnxOptions, RuntimeError};

use crate::cmd::list;
use crate::cmd::models::version_json;
use crate::cmd::registry::{RegistryPath, who};
use crate::output;

#[derive(Args)]
pub struct ExportArgs {
    /// The version to export: NAME:VERSION or NAME@ALIAS.
    pub reference: String,
    /// The tar to write.
    #[arg(long, value_name = "F.tar")]
    pub out: PathBuf,
    #[command(flatten)]
    pub registry: RegistryPath,
    /// Print the result as one JSON object, for scripts and CI pipelines.
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
    /// The CSV's field delimiter, e.g. ';' or tab (default: read from the header line; a
    /// gzip-compressed file is read as it is).
    #[arg(long, value_parser = crate::cmd::delimiter, value_name = "CHAR", help_heading = "ONNX models")]
    pub delimiter: Option<u8>,
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
    /// Print the result as one JSON object, for scripts and CI pipelines.
    #[arg(long)]
    pub json: bool,
}

pub fn import(args: ImportArgs) -> Result<()> {
    if args.file.extension().is_some_and(|e| e == "onnx") {
        return import_onnx(args);
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
    let done = registry.import(
        exported,
        args.name.as_deref(),
        args.alias.as_deref(),
        &who(),
    )?;
    let v = &done.record;
    if args.json {
        let mut out = version_json(v, None);
        out["reused"] = json!(done.reused);
        output::print_json(&out);
    } else {
        println!(
            "{} {} as {}:{} (package {}…)",
            if done.reused {
                "already imported:"
            } else {
                "imported"
            },
            args.file.display(),
            v.model,
            v.version,
            slipway_registry::short(&v.digest)
        );
    }
    Ok(())
}

/// `slipway import model.onnx`: the runtime writes and loads the package, then it is
/// registered. A file that does not load registers nothing.
fn import_onnx(args: ImportArgs) -> Result<()> {
    let file = &args.file;
    let bytes = std::fs::read(file).map_err(|e| LearnError::io(file, e))?;
    let mut input_shapes = Vec::new();
    for spec in &args.input_shapes {
        let parsed = spec.split_once('=').and_then(|(name, dims)| {
            let dims: Option<Vec<i64>> = dims
                .split(',')
                .map(|d| d.trim().parse().ok().filter(|&d: &i64| d == -1 || d > 0))
                .collect();
            Some((name.trim().to_string(), dims?))
        });
        input_shapes.push(parsed.ok_or_else(|| {
            RegistryError::Invalid(format!(
                "--input-shape `{spec}` is not NAME=D,D,… with each D a size or -1"
            ))
        })?);
    }
    let name = args.name.clone().unwrap_or_else(|| {
        file.file_stem().map_or("model".into(), |s| {
            s.to_string_lossy().replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "-",
            )
        })
    });
    let options = OnnxOptions {
        name: name.clone(),
        source: file.clone(),
        features: args.features.as_deref().map(list),
        features_from: args.features_from.clone(),
        data: args.data.clone(),
        target: args.target.clone(),
        task: args.task.as_deref().map(|t| match t {
            "binary" => Task::BinaryClassification,
            "multiclass" => Task::MulticlassClassification,
            _ => Task::Regression,
        }),
        classes: args.classes.as_deref().map(list),
        scores_output: args.scores_output.clone(),
        label_output: args.label_output.clone(),
        input_shapes,
        threshold: args.threshold,
        delimiter: args.delimiter,
    };
    let staging = tempfile::tempdir().map_err(|e| LearnError::io(std::path::Path::new("."), e))?;
    let packaged = match slipway_runtime::package_onnx(&bytes, &options, staging.path()) {
        Ok(p) => p,
        Err(RuntimeError::Onnx { path, source }) => {
            return Err(LearnError::data(path, format!("{source}; nothing was registered")).into());
        }
        Err(e) => return Err(e.into()),
    };
    let mut registry = args.registry.open_or_create()?;
    let mut tags = BTreeMap::new();
    tags.insert("source".to_string(), "onnx".to_string());
    let v = registry.register(
        staging.path(),
        &RegisterOptions {
            name,
            alias: args.alias.clone(),
            description: format!("imported from {}", file.display()),
            tags,
            by: who(),
        },
    )?;
    let reused = v.reused;
    let v = v.record;
    let (manifest, info) = (&packaged.manifest, &packaged.info);
    if args.json {
        output::print_json(&json!({
            "model": v.model,
            "version": v.version,
            "reference": format!("{}:{}", v.model, v.version),
            "reused": reused,
            "digest": v.digest,
            "engine": info.engine,
            "operators": info.operators,
            "signature": manifest.signature,
            "task": manifest.task,
            "classes": manifest.target.classes,
            "metrics": manifest.metrics,
        }));
        return Ok(());
    }
    println!(
        "{} {} as {}:{} (package {}…){}",
        if reused {
            "already imported:"
        } else {
            "imported"
        },
        file.display(),
        v.model,
        v.version,
        slipway_registry::short(&v.digest),
        args.alias
            .as_ref()
            .map_or(String::new(), |a| format!("; @{a} → {}", v.version))
    );
    println!(
        "  {} · {} · runs on the {} engine",
        manifest.task,
        printable(&info.producer),
        info.engine
    );
    if let (Some(data), Some(e)) = (&args.data, &packaged.evaluation) {
        let shown: Vec<String> = ["roc_auc", "accuracy", "f1", "r2", "rmse"]
            .iter()
            .filter_map(|k| e.metric(k).map(|v| format!("{k} {v:.4}")))
            .collect();
        println!(
            "  evaluated on {} ({} rows): {}",
            data.display(),
            e.rows,
            shown.join(", ")
        );
    }
    for (kind, list) in [
        ("input ", &manifest.signature.inputs),
        ("output", &manifest.signature.outputs),
    ] {
        for t in list {
            println!(
                "  {kind} {} {} {:?}",
                printable(&t.name),
                t.datatype,
                t.shape
            );
        }
    }
    Ok(())
}
