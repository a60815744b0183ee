//! What a model wants, as people and clients read it: each input column with its kind and what
//! training saw of it (categories; the numeric range and median from the profile), and an example
//! request of typical values in both protocols — V1 records by column name, V2 tensors as the
//! signature lays them out. `slipway models example` prints it; the server's V2 model metadata
//! carries it in `parameters`.

use serde::Serialize;
use serde_json::{Value as Json, json};
use slipway_core::{DataType, Family, FeatureKind, Framework, Manifest, TensorSpec};

/// At most this many categories of one column are listed (a near-unique column can have
/// thousands); `more` counts the rest.
pub const MOST_LISTED_CATEGORIES: usize = 50;

/// One input column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(flatten)]
    pub kind: ColumnKind,
    /// Share of training rows where it was missing (absent for imported graphs without a
    /// profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<f64>,
}

/// What a column takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnKind {
    /// A number; the range and median seen in training, when the package knows them.
    Number {
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        median: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// One of the categories seen in training (others encode as unseen), most frequent first
    /// when the package has the shares.
    Category {
        categories: Vec<String>,
        #[serde(skip_serializing_if = "is_zero")]
        more: usize,
        most_frequent: String,
    },
    /// A whole number (an integer input of an imported graph).
    Integer,
    /// Text (a string input of an imported graph).
    Text,
    /// `true` or `false`.
    Bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A model's columns and an example request in each protocol.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub columns: Vec<Column>,
    /// The body of `POST /v1/models/{name}:predict`.
    pub v1: Json,
    /// The body of `POST /v2/models/{name}/infer`.
    pub v2: Json,
}

/// The columns and example requests of the package `manifest` describes.
pub fn example(manifest: &Manifest) -> Example {
    let columns = columns(manifest);
    let typical: Vec<Json> = columns.iter().map(typical).collect();
    let record: serde_json::Map<String, Json> = columns
        .iter()
        .zip(&typical)
        .map(|(c, v)| (c.name.clone(), v.clone()))
        .collect();
    let v1 = json!({ "instances": [record] });
    let inputs = &manifest.signature.inputs;
    let v2_inputs: Vec<Json> = match matrix(manifest) {
        // One matrix: a row of every column, in order.
        Some(m) => vec![json!({
            "name": m.name,
            "datatype": m.datatype.as_str(),
            "shape": [1, columns.len()],
            "data": typical,
        })],
        None => columns
            .iter()
            .zip(&typical)
            .filter_map(|(c, v)| {
                let input = inputs.iter().find(|i| i.name == c.name)?;
                let shape: &[usize] = if input.shape.len() == 2 {
                    &[1, 1]
                } else {
                    &[1]
                };
                Some(json!({
                    "name": input.name,
                    "datatype": input.datatype.as_str(),
                    "shape": shape,
                    "data": [v],
                }))
            })
            .collect(),
    };
    let v2 = json!({ "inputs": v2_inputs });
    Example { columns, v1, v2 }
}

/// The one matrix input the package's columns fill, if they fill one.
fn matrix(manifest: &Manifest) -> Option<&TensorSpec> {
    let inputs = &manifest.signature.inputs;
    match &manifest.model.onnx {
        Some(spec) if spec.input.is_empty() => None,
        Some(spec) => inputs.iter().find(|i| i.name == spec.input),
        None => crate::matrix_width(&manifest.signature).and(inputs.first()),
    }
}

/// The package's columns: a native package's features with what training saw, or an imported
/// graph's columns typed by the inputs they feed.
fn columns(manifest: &Manifest) -> Vec<Column> {
    match (&manifest.model.onnx, manifest.framework) {
        (Some(spec), _) => {
            let inputs = &manifest.signature.inputs;
            spec.features
                .iter()
                .map(|name| {
                    let datatype = if spec.input.is_empty() {
                        inputs
                            .iter()
                            .find(|i| i.name == *name)
                            .map_or(DataType::Fp32, |i| i.datatype)
                    } else {
                        DataType::Fp32
                    };
                    // A profiled feature of the same name (none yet for imported graphs).
                    let known = manifest.features.iter().find(|f| f.name == *name);
                    let kind = match known {
                        Some(f) => feature_kind(f),
                        None => graph_kind(datatype),
                    };
                    Column {
                        name: name.clone(),
                        kind,
                        missing: known.map(|f| f.profile.missing),
                    }
                })
                .collect()
        }
        (None, Framework::Native | Framework::Onnx) => manifest
            .features
            .iter()
            .map(|f| Column {
                name: f.name.clone(),
                kind: feature_kind(f),
                missing: Some(f.profile.missing),
            })
            .collect(),
    }
}

fn graph_kind(datatype: DataType) -> ColumnKind {
    match datatype.family() {
        Family::Bytes => ColumnKind::Text,
        Family::Bool => ColumnKind::Bool,
        Family::Integer => ColumnKind::Integer,
        Family::Float => ColumnKind::Number {
            min: None,
            median: None,
            max: None,
        },
    }
}

fn feature_kind(f: &slipway_core::FeatureSpec) -> ColumnKind {
    match &f.kind {
        FeatureKind::Numeric { median, .. } => {
            let edges = &f.profile.edges;
            ColumnKind::Number {
                min: edges.first().copied().filter(|x| x.is_finite()),
                median: Some(*median).filter(|x| x.is_finite()),
                max: edges.last().copied().filter(|x| x.is_finite()),
            }
        }
        FeatureKind::Categorical {
            categories,
            most_frequent,
        } => {
            // Most frequent first when the profile has a share per category.
            let shares = &f.profile.shares;
            let mut order: Vec<usize> = (0..categories.len()).collect();
            if shares.len() == categories.len() {
                order.sort_by(|&a, &b| shares[b].total_cmp(&shares[a]).then(a.cmp(&b)));
            }
            let listed: Vec<String> = order
                .iter()
                .take(MOST_LISTED_CATEGORIES)
                .map(|&i| categories[i].clone())
                .collect();
            ColumnKind::Category {
                more: categories.len() - listed.len(),
                categories: listed,
                most_frequent: most_frequent.clone(),
            }
        }
    }
}

/// A typical value: the median, the most frequent category, or a neutral value.
fn typical(c: &Column) -> Json {
    match &c.kind {
        ColumnKind::Number { median, .. } => json!(median.map_or(0.0, tidy)),
        ColumnKind::Category { most_frequent, .. } => json!(most_frequent),
        ColumnKind::Integer => json!(0),
        ColumnKind::Text => json!(""),
        ColumnKind::Bool => json!(false),
    }
}

/// `x` to at most six significant digits, so an example reads `33.5`, not `33.499999999`.
fn tidy(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}
