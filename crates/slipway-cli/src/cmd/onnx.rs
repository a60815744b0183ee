//! ONNX models in the CLI: `slipway import model.onnx`, and `eval` / `predict` on ONNX packages.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use ndarray::{Array2, concatenate, s};
use serde_json::json;
use slipway_core::manifest::{Lineage, Payload, TargetSpec};
use slipway_core::{DataType, Framework, Manifest, Model, ModelSpec, OnnxSpec, Signature, Task};
use slipway_learn::{LearnError, dataset, train};
use slipway_registry::{RegisterOptions, RegistryError};
use slipway_runtime::{EngineChoice, OnnxModel, tabular};

use crate::cmd::registry::{ImportArgs, who};
use crate::output;

/// Rows per call into the model.
const CHUNK: usize = 8192;

fn invalid(message: String) -> anyhow::Error {
    RegistryError::Invalid(message).into()
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// `slipway import model.onnx --name N`: reads the graph's signature, tries the load, writes a
/// package and registers it. A file that does not load registers nothing.
pub fn import(args: ImportArgs) -> Result<()> {
    let file = &args.file;
    let bytes = std::fs::read(file).map_err(|e| LearnError::io(file, e))?;
    let mut overrides = Vec::new();
    if !args.input_shapes.is_empty() {
        let graph = OnnxModel::from_bytes(&bytes, EngineChoice::Auto)
            .map_err(|e| LearnError::data(file, format!("{e}; nothing was registered")))?;
        for spec in &args.input_shapes {
            let parsed = spec.split_once('=').and_then(|(name, dims)| {
                let dims: Option<Vec<i64>> = dims
                    .split(',')
                    .map(|d| d.trim().parse().ok().filter(|&d: &i64| d == -1 || d > 0))
                    .collect();
                Some((name.trim(), dims?))
            });
            let Some((name, shape)) = parsed else {
                return Err(invalid(format!(
                    "--input-shape `{spec}` is not NAME=D,D,… with each D a size or -1"
                )));
            };
            let Some(input) = graph.signature().inputs.iter().find(|i| i.name == name) else {
                return Err(invalid(format!(
                    "--input-shape names `{name}`, which is not an input of the graph"
                )));
            };
            overrides.push(slipway_core::TensorSpec {
                name: name.to_string(),
                datatype: input.datatype,
                shape,
            });
        }
    }
    let model = OnnxModel::from_bytes_with_inputs(&bytes, EngineChoice::Auto, &overrides)
        .map_err(|e| LearnError::data(file, format!("{e}; nothing was registered")))?;
    let sig = model.signature().clone();
    let target = args.target.clone().unwrap_or_else(|| "target".into());

    // Feature columns.
    let features = if let Some(f) = &args.features {
        list(f)
    } else if let Some(csv) = args.features_from.as_ref().or(args.data.as_ref()) {
        let header = {
            let f = std::fs::File::open(csv).map_err(|e| LearnError::io(csv, e))?;
            slipway_learn::data::csv_reader(csv, f)?.1
        };
        header.into_iter().filter(|h| *h != target).collect()
    } else if sig.inputs.len() > 1 {
        sig.inputs.iter().map(|i| i.name.clone()).collect()
    } else {
        let width = sig.inputs[0].shape.get(1).copied().unwrap_or(-1);
        let width = usize::try_from(width).map_err(|_| {
            invalid(format!(
                "the input `{}` has no fixed width; name its columns with --features a,b,c or --features-from data.csv",
                sig.inputs[0].name
            ))
        })?;
        (0..width).map(|i| format!("f{i}")).collect()
    };
    let input = if sig.inputs.len() == 1
        && sig.inputs[0].shape.len() == 2
        && !(features.len() == 1 && features[0] == sig.inputs[0].name)
    {
        let spec = &sig.inputs[0];
        let width = spec.shape[1];
        if width > 0 && usize::try_from(width).ok() != Some(features.len()) {
            return Err(invalid(format!(
                "the input `{}` takes {width} columns but {} feature names were given",
                spec.name,
                features.len()
            )));
        }
        if !matches!(spec.datatype, DataType::Fp32 | DataType::Fp64) {
            return Err(invalid(format!(
                "the input `{}` is {}; a matrix input must be FP32 or FP64",
                spec.name, spec.datatype
            )));
        }
        spec.name.clone()
    } else {
        for f in &features {
            if !sig.inputs.iter().any(|i| i.name == *f) {
                return Err(invalid(format!(
                    "feature `{f}` names no input of the graph"
                )));
            }
        }
        String::new()
    };

    // Outputs.
    let pick = |flag: &Option<String>,
                what: &str,
                ok: &dyn Fn(DataType) -> bool|
     -> Result<Option<String>> {
        match flag {
            Some(name) if sig.outputs.iter().any(|o| o.name == *name) => Ok(Some(name.clone())),
            Some(name) => Err(invalid(format!(
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
        }
    };
    let label = pick(&args.label_output, "label", &|d| {
        matches!(d, DataType::Bytes | DataType::Int64)
    })?;
    let scores = pick(&args.scores_output, "scores", &|d| {
        matches!(d, DataType::Fp32 | DataType::Fp64)
    })?
    .ok_or_else(|| {
        invalid(
            "the graph has no FP32 or FP64 output to read probabilities or predictions from".into(),
        )
    })?;
    let score_width = sig
        .outputs
        .iter()
        .find(|o| o.name == scores)
        .and_then(|o| o.shape.get(1).copied())
        .unwrap_or(1);

    // Task and classes.
    let classes = match &args.classes {
        Some(c) => list(c),
        None => model.info.classes.clone().unwrap_or_default(),
    };
    let task = match (args.task.as_deref(), classes.len()) {
        (None | Some("binary"), 2) => Task::BinaryClassification,
        (None | Some("multiclass"), n) if n > 2 => Task::MulticlassClassification,
        (Some("regression"), 0) => Task::Regression,
        (None, 0) if score_width == 1 => Task::Regression,
        (None, 0) => {
            return Err(invalid(format!(
                "the graph names no classes and its output `{scores}` has {score_width} columns; \
                 pass --classes a,b[,c] (in output order) or --task regression"
            )));
        }
        (t, n) => {
            return Err(invalid(format!(
                "{} does not fit {n} classes (binary takes 2, multiclass 3 or more, regression none)",
                t.map_or("the graph".to_string(), |t| format!("--task {t}"))
            )));
        }
    };
    let binary = task == Task::BinaryClassification;
    let digest: String = {
        use sha2::{Digest, Sha256};
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = args.name.clone().unwrap_or_else(|| {
        file.file_stem().map_or("model".into(), |s| {
            s.to_string_lossy().replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "-",
            )
        })
    });
    let manifest = Manifest {
        format_version: slipway_core::manifest::FORMAT_VERSION,
        name: name.clone(),
        task,
        framework: Framework::Onnx,
        target: TargetSpec {
            name: target,
            positive_class: binary.then(|| classes[1].clone()),
            threshold: binary.then(|| args.threshold.unwrap_or(0.5)),
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
            file: "model.onnx".into(),
            sha256: digest,
        },
        metrics: BTreeMap::new(),
        evaluated_on: String::new(),
        params: json!({"imported_from": file.display().to_string(), "engine": model.info.engine, "operators": model.info.operators}),
        lineage: Lineage {
            dataset_sha256: String::new(),
            dataset: String::new(),
            rows: 0,
            rows_dropped: 0,
            split: [0, 0, 0],
            seed: 0,
            slipway_version: env!("CARGO_PKG_VERSION").into(),
            created_at: slipway_core::manifest::rfc3339(now),
        },
    };
    manifest.check().map_err(|e| invalid(e.to_string()))?;
    let staging = tempfile::tempdir().map_err(|e| LearnError::io(Path::new("."), e))?;
    let dir = staging.path();
    std::fs::write(dir.join("model.onnx"), &bytes).map_err(|e| LearnError::io(dir, e))?;
    let text = serde_json::to_string_pretty(&manifest)?;
    std::fs::write(dir.join("slipway.json"), text).map_err(|e| LearnError::io(dir, e))?;
    // The package as written must load, through the same path every server takes.
    let loaded = slipway_runtime::load(dir)?;
    // Labelled data: the metrics gates check, recorded as for a trained model's test file.
    let mut manifest = manifest;
    if let Some(data) = &args.data {
        let (report, ds, rows) = evaluate(&loaded, data, None)?;
        manifest.metrics = report
            .scalars()
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .collect();
        manifest.evaluated_on = "test_data".into();
        manifest.lineage.dataset = data.display().to_string();
        manifest.lineage.dataset_sha256.clone_from(&ds.frame.sha256);
        manifest.lineage.rows = rows.len() as u64;
        manifest.lineage.rows_dropped = ds.rows_dropped as u64;
        manifest.lineage.split = [0, 0, rows.len() as u64];
        let text = serde_json::to_string_pretty(&manifest)?;
        std::fs::write(dir.join("slipway.json"), text).map_err(|e| LearnError::io(dir, e))?;
    }
    let mut registry = args.registry.open_or_create()?;
    let mut tags = BTreeMap::new();
    tags.insert("source".to_string(), "onnx".to_string());
    let v = registry.register(
        dir,
        &RegisterOptions {
            name,
            alias: args.alias.clone(),
            description: format!("imported from {}", file.display()),
            tags,
            by: who(),
        },
    )?;
    if args.json {
        output::print_json(&json!({
            "model": v.model,
            "version": v.version,
            "reference": format!("{}:{}", v.model, v.version),
            "digest": v.digest,
            "engine": model.info.engine,
            "operators": model.info.operators,
            "signature": manifest.signature,
            "task": manifest.task,
            "classes": manifest.target.classes,
            "metrics": manifest.metrics,
        }));
    } else {
        println!(
            "imported {} as {}:{} (package {}…){}",
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
            manifest.task, model.info.producer, model.info.engine
        );
        if let Some(data) = &args.data {
            let shown: Vec<String> = ["roc_auc", "accuracy", "f1", "r2", "rmse"]
                .iter()
                .filter_map(|k| manifest.metrics.get(*k).map(|v| format!("{k} {v:.4}")))
                .collect();
            println!(
                "  evaluated on {} ({} rows): {}",
                data.display(),
                manifest.lineage.rows,
                shown.join(", ")
            );
        }
        for (kind, list) in [
            ("input ", &manifest.signature.inputs),
            ("output", &manifest.signature.outputs),
        ] {
            for t in list {
                println!("  {kind} {} {} {:?}", t.name, t.datatype, t.shape);
            }
        }
    }
    Ok(())
}

/// Scores `rows` in chunks.
fn score_all(
    loaded: &slipway_runtime::Loaded,
    frame: &slipway_learn::data::Frame,
    columns: &[usize],
    rows: &[usize],
    path: &Path,
) -> Result<(Array2<f64>, Option<Vec<String>>)> {
    let mut outs = Vec::new();
    let mut labels: Option<Vec<String>> = None;
    for chunk in rows.chunks(CHUNK) {
        let scored = tabular::score(&loaded.manifest, &*loaded.model, frame, columns, chunk)
            .map_err(|e| LearnError::data(path, e))?;
        outs.push(scored.out);
        if let Some(l) = scored.labels {
            labels.get_or_insert_with(Vec::new).extend(l);
        }
    }
    let width = outs.first().map_or(1, |o| o.ncols());
    let views: Vec<_> = outs.iter().map(|o| o.view()).collect();
    let out = if views.is_empty() {
        Array2::zeros((0, width))
    } else {
        concatenate(ndarray::Axis(0), &views)?
    };
    Ok((out, labels))
}

/// The CSV columns an ONNX package reads, as feature specs for the CSV reader.
fn features_of(loaded: &slipway_runtime::Loaded) -> Result<Vec<slipway_core::FeatureSpec>> {
    let spec = loaded
        .manifest
        .model
        .onnx
        .as_ref()
        .ok_or_else(|| invalid("not an ONNX package".into()))?;
    Ok(tabular::numeric_features(spec, &*loaded.model))
}

/// Scores a labelled CSV with a loaded ONNX package and computes the report.
fn evaluate(
    loaded: &slipway_runtime::Loaded,
    data: &Path,
    threshold: Option<f64>,
) -> Result<(slipway_learn::metrics::Report, dataset::Dataset, Vec<usize>)> {
    let m = &loaded.manifest;
    let feats = features_of(loaded)?;
    let ds = dataset::load_for_model(data, &feats, &m.target.name, &m.target.classes)?;
    let rows = ds.rows();
    let (out, _) = score_all(loaded, &ds.frame, &ds.feature_columns, &rows, data)?;
    let threshold = threshold.unwrap_or(m.target.threshold.unwrap_or(0.5));
    let report = train::evaluate(out.view(), &ds.target, &rows, threshold);
    Ok((report, ds, rows))
}

/// `slipway eval` on an ONNX package.
pub fn eval(
    dir: &Path,
    reference: &str,
    data: &Path,
    threshold: Option<f64>,
    as_json: bool,
) -> Result<()> {
    let loaded = slipway_runtime::load(dir)?;
    let m = &loaded.manifest;
    let (report, ds, rows) = evaluate(&loaded, data, threshold)?;
    if as_json {
        output::print_json(&json!({
            "package": reference,
            "data": data.display().to_string(),
            "rows": rows.len(),
            "dropped_missing_target": ds.rows_dropped,
            "metrics": report.scalars(),
            "report": report,
        }));
        return Ok(());
    }
    if ds.rows_dropped > 0 {
        eprintln!(
            "warning: dropped {} rows whose target `{}` is missing",
            ds.rows_dropped, m.target.name
        );
    }
    println!(
        "onnx `{}` ({}, {}) on {}: {} rows\n",
        m.name,
        m.task,
        &m.payload.sha256[..12],
        data.display(),
        rows.len()
    );
    print!(
        "{}",
        output::report_text(&report, m.target.positive_class.as_deref())
    );
    Ok(())
}

/// `slipway predict` on an ONNX package: the same columns as for native packages.
pub fn predict(
    dir: &Path,
    data: &Path,
    out: &Path,
    id_column: Option<&str>,
    threshold: Option<f64>,
    as_json: bool,
) -> Result<()> {
    let start = std::time::Instant::now();
    let loaded = slipway_runtime::load(dir)?;
    let m = &loaded.manifest;
    let feats = features_of(&loaded)?;
    let frame = dataset::read_for_features(data, &feats, None)?;
    let columns = feats
        .iter()
        .map(|f| frame.require(&f.name))
        .collect::<slipway_learn::Result<Vec<_>>>()?;
    let id = id_column.map(|c| frame.require(c)).transpose()?;
    let rows: Vec<usize> = (0..frame.n_rows).collect();
    let (scores, _) = score_all(&loaded, &frame, &columns, &rows, data)?;
    let threshold = threshold.unwrap_or(m.target.threshold.unwrap_or(0.5));
    let to_stdout = out.as_os_str() == "-";
    let mut buf = Vec::with_capacity(rows.len() * 24);
    {
        let mut w = csv::Writer::from_writer(&mut buf);
        let mut header: Vec<String> = id_column.map(str::to_string).into_iter().collect();
        match m.task {
            Task::BinaryClassification => {
                header.extend(["probability".to_string(), "label".to_string()])
            }
            Task::MulticlassClassification => {
                header.extend(m.target.classes.iter().map(|c| format!("probability_{c}")));
                header.push("label".into());
            }
            Task::Regression => header.push("prediction".into()),
        }
        w.write_record(&header)?;
        for (i, &r) in rows.iter().enumerate() {
            let mut record: Vec<String> = Vec::with_capacity(header.len());
            if let Some(c) = id {
                record.push(match &frame.columns[c] {
                    slipway_learn::data::Column::Numeric(v) => v[r].to_string(),
                    slipway_learn::data::Column::Categorical { codes, levels } => {
                        levels.get(codes[r] as usize).cloned().unwrap_or_default()
                    }
                });
            }
            let row = scores.slice(s![i, ..]);
            match m.task {
                Task::BinaryClassification => {
                    record.push(row[0].to_string());
                    record.push(m.target.classes[usize::from(row[0] >= threshold)].clone());
                }
                Task::MulticlassClassification => {
                    let mut best = 0;
                    for (j, v) in row.iter().enumerate() {
                        record.push(v.to_string());
                        if *v > row[best] {
                            best = j;
                        }
                    }
                    record.push(m.target.classes[best].clone());
                }
                Task::Regression => record.push(row[0].to_string()),
            }
            w.write_record(&record)?;
        }
        w.flush()?;
    }
    if to_stdout {
        std::io::stdout().lock().write_all(&buf)?;
    } else {
        slipway_learn::package::write_atomic(out, &buf)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let rate = rows.len() as f64 / seconds.max(1e-9);
    if as_json && !to_stdout {
        output::print_json(
            &json!({"rows": rows.len(), "seconds": seconds, "rows_per_second": rate, "out": out.display().to_string()}),
        );
    } else {
        eprintln!(
            "scored {} rows in {seconds:.2} s ({rate:.0} rows/s) → {}",
            rows.len(),
            out.display()
        );
    }
    Ok(())
}

/// True when the package folder holds an ONNX model.
pub fn is_onnx(dir: &Path) -> bool {
    slipway_learn::package::read_manifest(dir).is_ok_and(|m| m.framework == Framework::Onnx)
}
