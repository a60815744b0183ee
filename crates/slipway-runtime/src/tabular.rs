//! Tabular rows through an imported ONNX model: CSV columns in, class probabilities (or the
//! prediction) out, as [`crate::evaluate`] and [`crate::predict`] need them. Labels are the
//! manifest's classes at the decision threshold (or the most probable), as for native models.

// A CSV column feeds a few element types; the catch-all arm is the error for the others.
#![allow(clippy::wildcard_enum_match_arm)]

use ndarray::Array2;
use slipway_core::{
    DataType, FeatureKind, FeatureSpec, Manifest, Model, OnnxSpec, Task, Tensor, TensorData,
    manifest::Profile,
};
use slipway_learn::data::{Column, Frame};

/// Feature specs that make the CSV reader keep `names` as numeric columns.
pub fn numeric_features(spec: &OnnxSpec, model: &dyn Model) -> Vec<FeatureSpec> {
    spec.features
        .iter()
        .map(|name| {
            let text = model
                .signature()
                .inputs
                .iter()
                .any(|i| i.name == *name && i.datatype == DataType::Bytes);
            FeatureSpec {
                name: name.clone(),
                kind: if text {
                    FeatureKind::Categorical {
                        categories: Vec::new(),
                        most_frequent: String::new(),
                    }
                } else {
                    FeatureKind::Numeric {
                        median: 0.0,
                        mean: 0.0,
                        std: 1.0,
                    }
                },
                profile: Profile {
                    missing: 0.0,
                    edges: Vec::new(),
                    shares: Vec::new(),
                },
            }
        })
        .collect()
}

/// Model answers for a block of rows.
pub struct Scored {
    /// Binary: `[n, 1]`, the positive class's probability; multiclass: `[n, classes]`;
    /// regression: `[n, 1]`, the prediction.
    pub out: Array2<f64>,
}

fn numeric(column: &Column, row: usize) -> f64 {
    match column {
        Column::Numeric(v) => v[row],
        Column::Categorical { codes, levels } => levels
            .get(codes[row] as usize)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(f64::NAN),
    }
}

fn text(column: &Column, row: usize) -> Vec<u8> {
    match column {
        Column::Numeric(v) if v[row].is_nan() => Vec::new(),
        Column::Numeric(v) => v[row].to_string().into_bytes(),
        Column::Categorical { codes, levels } => levels
            .get(codes[row] as usize)
            .cloned()
            .unwrap_or_default()
            .into_bytes(),
    }
}

/// Builds the graph's inputs for `rows` of `frame` (`columns` are the frame indices of the
/// spec's features, in order).
pub fn inputs(
    spec: &OnnxSpec,
    model: &dyn Model,
    frame: &Frame,
    columns: &[usize],
    rows: &[usize],
) -> Result<Vec<Tensor>, String> {
    let sig = model.signature();
    let n = rows.len();
    if !spec.input.is_empty() {
        let input = sig
            .inputs
            .iter()
            .find(|i| i.name == spec.input)
            .ok_or_else(|| format!("the graph has no input `{}`", spec.input))?;
        let width = columns.len();
        let data = match input.datatype {
            DataType::Fp32 => TensorData::Fp32(
                rows.iter()
                    .flat_map(|&r| {
                        columns
                            .iter()
                            .map(move |&c| numeric(&frame.columns[c], r) as f32)
                    })
                    .collect(),
            ),
            DataType::Fp64 => TensorData::Fp64(
                rows.iter()
                    .flat_map(|&r| columns.iter().map(move |&c| numeric(&frame.columns[c], r)))
                    .collect(),
            ),
            other => {
                return Err(format!(
                    "the matrix input `{}` is {other}; Slipway feeds CSV rows as FP32 or FP64",
                    input.name
                ));
            }
        };
        return Ok(vec![Tensor {
            name: input.name.clone(),
            shape: vec![n, width],
            data,
        }]);
    }
    let mut out = Vec::with_capacity(columns.len());
    for (name, &c) in spec.features.iter().zip(columns) {
        let input = sig
            .inputs
            .iter()
            .find(|i| i.name == *name)
            .ok_or_else(|| format!("the graph has no input `{name}`"))?;
        let col = &frame.columns[c];
        let data = match input.datatype {
            DataType::Fp32 => {
                TensorData::Fp32(rows.iter().map(|&r| numeric(col, r) as f32).collect())
            }
            DataType::Fp64 => TensorData::Fp64(rows.iter().map(|&r| numeric(col, r)).collect()),
            DataType::Int64 => {
                TensorData::Int64(rows.iter().map(|&r| numeric(col, r) as i64).collect())
            }
            DataType::Bytes => TensorData::Bytes(rows.iter().map(|&r| text(col, r)).collect()),
            other => {
                return Err(format!(
                    "input `{name}` is {other}, which a CSV column cannot feed"
                ));
            }
        };
        let shape = if input.shape.len() == 2 {
            vec![n, 1]
        } else {
            vec![n]
        };
        out.push(Tensor {
            name: name.clone(),
            shape,
            data,
        });
    }
    Ok(out)
}

/// Runs the model on `rows` and reads its answers.
pub fn score(
    manifest: &Manifest,
    model: &dyn Model,
    frame: &Frame,
    columns: &[usize],
    rows: &[usize],
) -> Result<Scored, String> {
    let spec = manifest.model.onnx.as_ref().ok_or("not an ONNX package")?;
    let inputs = inputs(spec, model, frame, columns, rows)?;
    let outputs = model.infer(&inputs).map_err(|e| e.to_string())?;
    Ok(Scored {
        out: read_scores(manifest, &outputs, rows.len())?,
    })
}

/// The scores in a model's outputs for `n` rows, whatever the framework: binary `[n, 1]`, the
/// probability of `classes[1]` (the second column of a two-column output); multiclass
/// `[n, classes]`; regression `[n, 1]`, the prediction.
pub fn read_scores(
    manifest: &Manifest,
    outputs: &[Tensor],
    n: usize,
) -> Result<Array2<f64>, String> {
    let name = manifest.scores_output();
    if n == 0 {
        let width = match manifest.task {
            Task::MulticlassClassification => manifest.target.classes.len(),
            Task::BinaryClassification | Task::Regression => 1,
        };
        return Ok(Array2::zeros((0, width)));
    }
    let scores = outputs
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| format!("the model gave no output `{name}`"))?;
    let values: Vec<f64> = match &scores.data {
        TensorData::Fp32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Fp64(v) => v.clone(),
        TensorData::Int64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Bool(_) | TensorData::Bytes(_) => {
            return Err(format!("output `{name}` is not numeric"));
        }
    };
    let width = values.len().checked_div(n).unwrap_or(0);
    if width * n != values.len() {
        return Err(format!(
            "output `{name}` has {} values, which is not a whole number per row of {n}",
            values.len()
        ));
    }
    match manifest.task {
        Task::BinaryClassification if width == 2 => {
            Ok(Array2::from_shape_fn((n, 1), |(i, _)| values[i * 2 + 1]))
        }
        Task::BinaryClassification | Task::Regression if width == 1 => {
            Array2::from_shape_vec((n, 1), values).map_err(|e| e.to_string())
        }
        Task::MulticlassClassification if width == manifest.target.classes.len() => {
            Array2::from_shape_vec((n, width), values).map_err(|e| e.to_string())
        }
        Task::BinaryClassification | Task::MulticlassClassification | Task::Regression => {
            Err(format!(
                "output `{name}` has {width} columns, which does not fit a {} model with {} classes",
                manifest.task,
                manifest.target.classes.len()
            ))
        }
    }
}
