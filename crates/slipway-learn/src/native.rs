//! What a native package says about itself: the signature it serves (its input layout and its
//! outputs per task) and the manifest a training run writes, with the run's parameters, metrics
//! and lineage. The package's files are named in `slipway_core::manifest::files`; writing and
//! reading them is `package`'s job.

use serde::Serialize;
use slipway_core::manifest::{FORMAT_VERSION, Payload, answer, files, rfc3339};
use slipway_core::{
    DataType, FeatureKind, FeatureSpec, Framework, Lineage, Manifest, ModelSpec, Signature,
    TargetSpec, Task, TensorSpec,
};

use crate::dataset::{Dataset, Target};
use crate::metrics::Report;
use crate::nn::Network;
use crate::train::{FitInfo, ModelKind, TrainSpec};

/// How a native package takes its inputs when served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputLayout {
    /// One tensor per raw column, `[-1]`, FP64 or BYTES: mixed numeric and categorical data.
    #[default]
    Columns,
    /// One FP64 matrix `[-1, n_features]` named [`MATRIX_INPUT`], the columns in training
    /// order, as scikit-learn, MLServer and Triton clients send tabular rows. Every feature
    /// must be numeric.
    Matrix,
}

/// The name of a matrix-layout package's input.
pub const MATRIX_INPUT: &str = "features";

/// The matrix input's width when `signature` takes one matrix (`--input matrix`) rather than
/// one tensor per column.
pub fn matrix_width(signature: &Signature) -> Option<usize> {
    match signature.inputs.as_slice() {
        [only] if only.shape.len() == 2 => usize::try_from(only.shape[1]).ok(),
        _ => None,
    }
}

/// The signature a native package serves: one tensor per raw column, or one matrix.
pub fn signature_for(
    features: &[FeatureSpec],
    task: Task,
    n_classes: usize,
    layout: InputLayout,
) -> Signature {
    let inputs = match layout {
        InputLayout::Columns => features
            .iter()
            .map(|f| TensorSpec {
                name: f.name.clone(),
                datatype: match f.kind {
                    FeatureKind::Numeric { .. } => DataType::Fp64,
                    FeatureKind::Categorical { .. } => DataType::Bytes,
                },
                shape: vec![-1],
            })
            .collect(),
        InputLayout::Matrix => vec![TensorSpec {
            name: MATRIX_INPUT.into(),
            datatype: DataType::Fp64,
            shape: vec![-1, features.len() as i64],
        }],
    };
    let spec = |name: &str, datatype, shape: Vec<i64>| TensorSpec {
        name: name.into(),
        datatype,
        shape,
    };
    let outputs = match task {
        Task::BinaryClassification => {
            vec![
                spec(answer::PROBABILITY, DataType::Fp64, vec![-1]),
                spec(answer::LABEL, DataType::Bytes, vec![-1]),
            ]
        }
        Task::MulticlassClassification => vec![
            spec(
                answer::PROBABILITIES,
                DataType::Fp64,
                vec![-1, n_classes as i64],
            ),
            spec(answer::LABEL, DataType::Bytes, vec![-1]),
        ],
        Task::Regression => vec![spec(answer::PREDICTION, DataType::Fp64, vec![-1])],
    };
    Signature { inputs, outputs }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn manifest_for(
    spec: &TrainSpec,
    data: &Dataset,
    task: Task,
    features: Vec<FeatureSpec>,
    network: &Network,
    report: &Report,
    fit: &FitInfo,
    split: [u64; 3],
    evaluated_on: &str,
) -> Manifest {
    let (classes, positive_class) = match &data.target {
        Target::Classes { classes, .. } => (
            classes.clone(),
            (classes.len() == 2).then(|| classes[1].clone()),
        ),
        Target::Values(_) => (Vec::new(), None),
    };
    let mut params = serde_json::to_value(&spec.params).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(map) = &mut params {
        map.insert("l2".into(), fit.l2.into());
        if spec.params.model != ModelKind::Mlp {
            for key in [
                "hidden",
                "activation",
                "output_activation",
                "loss",
                "optimizer",
                "lr",
                "momentum",
                "batch_size",
                "epochs",
                "patience",
                "min_delta",
            ] {
                map.remove(key);
            }
        }
        map.insert("epochs_run".into(), fit.epochs_run.into());
        map.insert("best_epoch".into(), fit.best_epoch.into());
        map.insert(
            "features".into(),
            features
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
                .into(),
        );
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Manifest {
        format_version: FORMAT_VERSION,
        name: spec.name.clone(),
        task,
        framework: Framework::Native,
        target: TargetSpec {
            name: data.target_name.clone(),
            classes: classes.clone(),
            threshold: positive_class.as_ref().map(|_| spec.params.threshold),
            positive_class,
        },
        signature: signature_for(&features, task, classes.len(), spec.input),
        features,
        model: ModelSpec {
            kind: spec.params.model.to_string(),
            layers: network.specs(),
            onnx: None,
        },
        payload: Payload {
            file: files::NATIVE_PAYLOAD.into(),
            sha256: String::new(),
        },
        metrics: report
            .scalars()
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .collect(),
        evaluated_on: evaluated_on.to_string(),
        params,
        lineage: Lineage {
            dataset_sha256: data.frame.sha256.clone(),
            dataset: spec.data.display().to_string(),
            rows: data.n_rows() as u64,
            rows_dropped: data.rows_dropped as u64,
            split,
            seed: spec.params.seed,
            slipway_version: env!("CARGO_PKG_VERSION").into(),
            created_at: rfc3339(created),
        },
    }
}
