//! ONNX packaging: an `.onnx` file plus what the graph cannot say (feature column names,
//! target, task, classes) becomes a package folder, checked by loading it as every server
//! will. `slipway import model.onnx` registers what this writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::Digest as _;
use slipway_core::manifest::{FORMAT_VERSION, Lineage, Payload, TargetSpec, files, rfc3339};
use slipway_core::{
    DataType, Framework, Manifest, Model, ModelSpec, OnnxSpec, Signature, Task, TensorSpec,
};
use slipway_learn::LearnError;
use slipway_learn::package::write_atomic;

use crate::evaluate::Evaluation;
use crate::{EngineChoice, OnnxInfo, OnnxModel, RuntimeError};

/// What the graph does not say, or what to say instead of it.
#[derive(Debug, Clone, Default)]
pub struct OnnxOptions {
    /// The package's name.
    pub name: String,
    /// Where the graph came from, recorded in the manifest's parameters.
    pub source: PathBuf,
    /// The CSV columns that fill the graph's matrix input, in order (or name its inputs).
    pub features: Option<Vec<String>>,
    /// A CSV whose header (all but the target) names the features.
    pub features_from: Option<PathBuf>,
    /// Labelled data to evaluate on; its metrics are recorded (and its header names the
    /// features when nothing else does).
    pub data: Option<PathBuf>,
    /// The target column (default `target`).
    pub target: Option<String>,
    /// The task (default: from the classes).
    pub task: Option<Task>,
    /// Class labels in score-column order (default: the graph's own).
    pub classes: Option<Vec<String>>,
    /// The output with the scores (default: the first FP32/FP64 one).
    pub scores_output: Option<String>,
    /// The output with the labels (default: the first BYTES/INT64 one).
    pub label_output: Option<String>,
    /// Input shapes replacing the graph's (`-1` for an open dimension).
    pub input_shapes: Vec<(String, Vec<i64>)>,
    /// Binary: the decision threshold (default 0.5).
    pub threshold: Option<f64>,
    /// The field delimiter of `features_from` and `data` (default: sniffed from the header).
    pub delimiter: Option<u8>,
}

/// A package written by [`package_onnx`].
#[derive(Debug)]
pub struct Packaged {
    pub manifest: Manifest,
    pub info: OnnxInfo,
    /// The evaluation on `data`, when given.
    pub evaluation: Option<Evaluation>,
}

/// The scores output fits the task as every reader of it expects (`tabular::read_scores`):
/// numeric, and one column (binary: the positive class's probability; regression), two
/// (binary: both classes) or one per class (multiclass). An open width is checked when rows run.
fn check_scores(
    sig: &Signature,
    scores: &str,
    task: Task,
    classes: usize,
) -> Result<(), RuntimeError> {
    let Some(out) = sig.outputs.iter().find(|o| o.name == scores) else {
        return Err(usage(format!("the graph has no output `{scores}`")));
    };
    if !matches!(
        out.datatype,
        DataType::Fp32 | DataType::Fp64 | DataType::Int64
    ) {
        return Err(usage(format!(
            "output `{scores}` is {}, not numbers: name the probabilities or predictions with --scores-output",
            out.datatype
        )));
    }
    let width = match out.shape.as_slice() {
        [_] => 1,
        [_, w] => *w,
        _ => {
            return Err(usage(format!(
                "output `{scores}` has shape {:?}; scores are one row per input row, [n] or [n, k]",
                out.shape
            )));
        }
    };
    let fits = match task {
        Task::BinaryClassification => width == 1 || width == 2,
        Task::MulticlassClassification => usize::try_from(width).is_ok_and(|w| w == classes),
        Task::Regression => width == 1,
    };
    if width >= 0 && !fits {
        return Err(usage(format!(
            "output `{scores}` has {width} columns, which does not fit a {task} model with {classes} classes: \
             check --task, --classes or --scores-output"
        )));
    }
    Ok(())
}

fn usage(message: String) -> RuntimeError {
    RuntimeError::Package(LearnError::Param(message))
}

/// Loads `bytes` (the ONNX file `options.source`), works out its package and writes it
/// (`model.onnx`, `slipway.json`) into the empty folder `dir`, then loads it from there.
pub fn package_onnx(
    bytes: &[u8],
    options: &OnnxOptions,
    dir: &Path,
) -> Result<Packaged, RuntimeError> {
    let file = &options.source;
    let onnx_error = |source| RuntimeError::Onnx {
        path: file.clone(),
        source,
    };
    let mut overrides = Vec::new();
    if !options.input_shapes.is_empty() {
        let graph = OnnxModel::from_bytes(bytes, EngineChoice::Auto).map_err(onnx_error)?;
        for (name, shape) in &options.input_shapes {
            let Some(input) = graph.signature().inputs.iter().find(|i| i.name == *name) else {
                return Err(usage(format!(
                    "--input-shape names `{name}`, which is not an input of the graph"
                )));
            };
            overrides.push(TensorSpec {
                name: name.clone(),
                datatype: input.datatype,
                shape: shape.clone(),
            });
        }
    }
    let model = OnnxModel::from_bytes_with_inputs(bytes, EngineChoice::Auto, &overrides)
        .map_err(onnx_error)?;
    let sig = model.signature().clone();
    let target = options.target.clone().unwrap_or_else(|| "target".into());
    let features = features(options, &sig, &target)?;
    let input = matrix_input(&sig, &features)?;

    let pick = |flag: &Option<String>, what: &str, ok: fn(DataType) -> bool| match flag {
        Some(name) if sig.outputs.iter().any(|o| o.name == *name) => Ok(Some(name.clone())),
        Some(name) => Err(usage(format!(
            "the graph has no output `{name}` for --{what}-output; its outputs are {}",
            sig.outputs
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => Ok(sig
            .outputs
            .iter()
            .find(|o| ok(o.datatype))
            .map(|o| o.name.clone())),
    };
    let label = pick(&options.label_output, "label", |d| {
        matches!(d, DataType::Bytes | DataType::Int64)
    })?;
    let scores = pick(&options.scores_output, "scores", |d| {
        matches!(d, DataType::Fp32 | DataType::Fp64)
    })?
    .ok_or_else(|| {
        usage(
            "the graph has no FP32 or FP64 output to read probabilities or predictions from".into(),
        )
    })?;
    let score_width = sig
        .outputs
        .iter()
        .find(|o| o.name == scores)
        .and_then(|o| o.shape.get(1).copied())
        .unwrap_or(1);
    let classes = options
        .classes
        .clone()
        .or_else(|| model.info.classes.clone())
        .unwrap_or_default();
    let task = match (options.task, classes.len()) {
        (None | Some(Task::BinaryClassification), 2) => Task::BinaryClassification,
        (None | Some(Task::MulticlassClassification), n) if n > 2 => Task::MulticlassClassification,
        (Some(Task::Regression), 0) => Task::Regression,
        (None, 0) if score_width == 1 => Task::Regression,
        (None, 0) => {
            return Err(usage(format!(
                "the graph names no classes and its output `{scores}` has {score_width} columns; \
                 pass --classes a,b[,c] (in output order) or --task regression"
            )));
        }
        (t, n) => {
            return Err(usage(format!(
                "{} does not fit {n} classes (binary takes 2, multiclass 3 or more, regression none)",
                t.map_or("the graph".to_string(), |t| format!("--task {t}"))
            )));
        }
    };
    check_scores(&sig, &scores, task, classes.len())?;
    let binary = task == Task::BinaryClassification;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        name: options.name.clone(),
        task,
        framework: Framework::Onnx,
        target: TargetSpec {
            name: target,
            positive_class: binary.then(|| classes[1].clone()),
            threshold: binary.then(|| options.threshold.unwrap_or(0.5)),
            classes,
        },
        signature: Signature {
            inputs: sig.inputs.clone(),
            outputs: sig.outputs.clone(),
        },
        features: Vec::new(),
        model: ModelSpec {
            kind: "onnx".into(),
            layers: Vec::new(),
            onnx: Some(OnnxSpec {
                features,
                input,
                label,
                scores,
                producer: model.info.producer.clone(),
                opsets: model.info.opsets.clone(),
            }),
        },
        payload: Payload {
            file: files::ONNX_PAYLOAD.into(),
            sha256: slipway_learn::data::hex(&sha2::Sha256::digest(bytes)),
        },
        metrics: BTreeMap::new(),
        evaluated_on: String::new(),
        params: json!({
            "imported_from": file.display().to_string(),
            "engine": model.info.engine,
            "operators": model.info.operators,
        }),
        lineage: Lineage {
            dataset_sha256: String::new(),
            dataset: String::new(),
            rows: 0,
            rows_dropped: 0,
            split: [0, 0, 0],
            seed: 0,
            slipway_version: env!("CARGO_PKG_VERSION").into(),
            created_at: rfc3339(now),
        },
    };
    manifest.check().map_err(|e| usage(e.to_string()))?;
    write_atomic(&dir.join(files::ONNX_PAYLOAD), bytes)?;
    write_manifest(dir, &manifest)?;
    // The package as written must load, through the same path every server takes.
    let loaded = crate::load(dir)?;
    let evaluation = match &options.data {
        Some(data) => {
            let e = crate::evaluate::onnx(&loaded, data, None, options.delimiter)?;
            manifest.metrics = e
                .report
                .scalars()
                .into_iter()
                .filter(|(_, v)| v.is_finite())
                .collect();
            manifest.evaluated_on = "test_data".into();
            manifest.lineage.dataset = data.display().to_string();
            manifest
                .lineage
                .dataset_sha256
                .clone_from(&e.dataset_sha256);
            manifest.lineage.rows = e.rows as u64;
            manifest.lineage.rows_dropped = e.rows_dropped as u64;
            manifest.lineage.split = [0, 0, e.rows as u64];
            write_manifest(dir, &manifest)?;
            Some(e)
        }
        None => None,
    };
    Ok(Packaged {
        manifest,
        info: model.info,
        evaluation,
    })
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), RuntimeError> {
    let text =
        serde_json::to_string_pretty(manifest).map_err(|e| LearnError::data(dir, e.to_string()))?;
    Ok(write_atomic(&dir.join(files::MANIFEST), text.as_bytes())?)
}

/// The feature columns: given, from a CSV header, the graph's input names (one input per
/// column), or `f0, f1, …` for the width of its one matrix input.
fn features(
    options: &OnnxOptions,
    sig: &Signature,
    target: &str,
) -> Result<Vec<String>, RuntimeError> {
    if let Some(f) = &options.features {
        return Ok(f.clone());
    }
    if let Some(csv) = options.features_from.as_ref().or(options.data.as_ref()) {
        let header = slipway_learn::data::csv_reader(csv, options.delimiter)?.1;
        return Ok(header.into_iter().filter(|h| h != target).collect());
    }
    if sig.inputs.len() > 1 {
        return Ok(sig.inputs.iter().map(|i| i.name.clone()).collect());
    }
    let input = &sig.inputs[0];
    // The width is bounded (the load refused any declared shape past MAX_ELEMENTS).
    let width = input
        .shape
        .get(1)
        .and_then(|&w| usize::try_from(w).ok())
        .filter(|&w| w <= crate::onnx::MAX_ELEMENTS)
        .ok_or_else(|| {
            usage(format!(
                "the input `{}` has no fixed width; name its columns with --features a,b,c or --features-from data.csv",
                input.name
            ))
        })?;
    Ok((0..width).map(|i| format!("f{i}")).collect())
}

/// The matrix input the feature columns fill, or `""` when each feature is an input.
fn matrix_input(sig: &Signature, features: &[String]) -> Result<String, RuntimeError> {
    if sig.inputs.len() == 1
        && sig.inputs[0].shape.len() == 2
        && !(features.len() == 1 && features[0] == sig.inputs[0].name)
    {
        let spec = &sig.inputs[0];
        let width = spec.shape[1];
        if width > 0 && usize::try_from(width).ok() != Some(features.len()) {
            return Err(usage(format!(
                "the input `{}` takes {width} columns but {} feature names were given",
                spec.name,
                features.len()
            )));
        }
        if !matches!(spec.datatype, DataType::Fp32 | DataType::Fp64) {
            return Err(usage(format!(
                "the input `{}` is {}; a matrix input must be FP32 or FP64",
                spec.name, spec.datatype
            )));
        }
        return Ok(spec.name.clone());
    }
    for f in features {
        if !sig.inputs.iter().any(|i| i.name == *f) {
            return Err(usage(format!("feature `{f}` names no input of the graph")));
        }
    }
    Ok(String::new())
}
