//! Any package, native or ONNX, on labelled data: the one evaluation `slipway eval`,
//! `import --data` (whose metrics gates then read) and `promote --must-beat` share.

use std::path::Path;

use ndarray::{Array2, Axis, concatenate};
use slipway_core::{Framework, Manifest};
use slipway_learn::metrics::Report;
use slipway_learn::package::{NativeModel, read_manifest};
use slipway_learn::{LearnError, dataset, pipeline, train};

use crate::{Loaded, RuntimeError, load, tabular};

/// Rows per call into an ONNX model.
const CHUNK: usize = 8192;

/// What a package scored on labelled data.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The package's manifest.
    pub manifest: Manifest,
    pub report: Report,
    /// Rows evaluated.
    pub rows: usize,
    /// Rows left out because their target was missing.
    pub rows_dropped: usize,
    /// Cells holding a category the (native) model did not see in training.
    pub unseen_categories: u64,
    /// SHA-256 of the data file.
    pub dataset_sha256: String,
}

impl Evaluation {
    /// One metric, when it is defined on these rows.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.report.get(name).filter(|v| v.is_finite())
    }
}

/// Evaluates the package in `dir` on the labelled CSV `data`; `threshold` overrides the
/// package's decision threshold (binary models); `delimiter` the CSV's (default: sniffed).
pub fn evaluate(
    dir: &Path,
    data: &Path,
    threshold: Option<f64>,
    delimiter: Option<u8>,
) -> Result<Evaluation, RuntimeError> {
    let manifest = read_manifest(dir)?;
    match manifest.framework {
        Framework::Native => Ok(native(
            &NativeModel::load(dir)?,
            data,
            threshold,
            delimiter,
        )?),
        Framework::Onnx => onnx(&load(dir)?, data, threshold, delimiter),
    }
}

fn native(
    model: &NativeModel,
    data: &Path,
    threshold: Option<f64>,
    delimiter: Option<u8>,
) -> Result<Evaluation, LearnError> {
    let m = &model.manifest;
    let ds = dataset::load_for_model(
        data,
        &m.features,
        &m.target.name,
        &m.target.classes,
        delimiter,
    )?;
    let rows = ds.rows();
    let (x, unseen) = pipeline::transform(&m.features, &ds.frame, &rows)?;
    let threshold = threshold.unwrap_or_else(|| model.threshold());
    let report = train::evaluate(model.forward(x.view()).view(), &ds.target, &rows, threshold);
    Ok(Evaluation {
        manifest: m.clone(),
        report,
        rows: rows.len(),
        rows_dropped: ds.rows_dropped,
        unseen_categories: unseen,
        dataset_sha256: ds.frame.sha256.clone(),
    })
}

/// An ONNX package: its feature columns read as the graph's inputs want them, scored in chunks.
pub(crate) fn onnx(
    loaded: &Loaded,
    data: &Path,
    threshold: Option<f64>,
    delimiter: Option<u8>,
) -> Result<Evaluation, RuntimeError> {
    let m = &loaded.manifest;
    let spec = m
        .model
        .onnx
        .as_ref()
        .ok_or_else(|| LearnError::data(data, "the package is not an ONNX package"))?;
    let features = tabular::numeric_features(spec, &*loaded.model);
    let ds = dataset::load_for_model(
        data,
        &features,
        &m.target.name,
        &m.target.classes,
        delimiter,
    )?;
    let rows = ds.rows();
    let mut outs = Vec::new();
    for chunk in rows.chunks(CHUNK) {
        let scored = tabular::score(m, &*loaded.model, &ds.frame, &ds.feature_columns, chunk)
            .map_err(|e| LearnError::data(data, e))?;
        outs.push(scored.out);
    }
    let width = outs.first().map_or(1, Array2::ncols);
    let views: Vec<_> = outs.iter().map(|o| o.view()).collect();
    let out = if views.is_empty() {
        Array2::zeros((0, width))
    } else {
        concatenate(Axis(0), &views).map_err(|e| LearnError::data(data, e.to_string()))?
    };
    let threshold = threshold.unwrap_or(m.target.threshold.unwrap_or(0.5));
    let report = train::evaluate(out.view(), &ds.target, &rows, threshold);
    Ok(Evaluation {
        manifest: m.clone(),
        report,
        rows: rows.len(),
        rows_dropped: ds.rows_dropped,
        unseen_categories: 0,
        dataset_sha256: ds.frame.sha256.clone(),
    })
}
