//! The model package manifest, `slipway.json`: everything needed to serve, trace and watch a model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{CoreError, Signature};

/// The manifest format this version of Slipway writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The files a package folder may hold: the manifest and one payload, native or ONNX. Every crate
/// that writes, reads, copies or checks a package names its files from here.
pub mod files {
    /// The manifest.
    pub const MANIFEST: &str = "slipway.json";
    /// A native model's weights.
    pub const NATIVE_PAYLOAD: &str = "model.safetensors";
    /// An imported ONNX graph.
    pub const ONNX_PAYLOAD: &str = "model.onnx";
    /// Every file a package may hold; anything else in a package folder is refused.
    pub const ALL: &[&str] = &[MANIFEST, NATIVE_PAYLOAD, ONNX_PAYLOAD];
}

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    BinaryClassification,
    MulticlassClassification,
    Regression,
}

impl Task {
    /// True for binary and multiclass classification.
    pub fn is_classification(self) -> bool {
        matches!(
            self,
            Task::BinaryClassification | Task::MulticlassClassification
        )
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::BinaryClassification => "binary classification",
            Task::MulticlassClassification => "multiclass classification",
            Task::Regression => "regression",
        })
    }
}

/// Which engine runs the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    /// Slipway's own estimators; payload `model.safetensors`.
    Native,
    /// An imported ONNX graph; payload `model.onnx`.
    Onnx,
}

/// The target column and, for classification, its classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSpec {
    pub name: String,
    /// Class labels in output order (empty for regression).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// For binary classification: the class whose probability the model outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_class: Option<String>,
    /// For binary classification: the probability at or above which the label is the positive
    /// class (the default of `predict`, `eval` and serving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// A raw input column and the preprocessing fitted for it on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: FeatureKind,
    /// Reference distribution on the training split, for drift detection.
    pub profile: Profile,
}

/// How a column is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureKind {
    /// Missing values become `median`, then `(x - mean) / std`.
    Numeric { median: f64, mean: f64, std: f64 },
    /// Missing values become `most_frequent`, then one-hot over `categories`; a category not in
    /// the list encodes as all zeros.
    Categorical {
        categories: Vec<String>,
        most_frequent: String,
    },
}

impl FeatureKind {
    /// Number of model inputs this column expands to.
    pub fn width(&self) -> usize {
        match self {
            FeatureKind::Numeric { .. } => 1,
            FeatureKind::Categorical { categories, .. } => categories.len(),
        }
    }
}

/// A feature's distribution on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Share of rows where the value was missing.
    pub missing: f64,
    /// Numeric: bin edges (deciles of the observed values); categorical: empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<f64>,
    /// Share of non-missing rows in each bin (numeric) or each category (categorical).
    pub shares: Vec<f64>,
}

/// Activation functions of dense layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Relu,
    Tanh,
    Sigmoid,
    Softmax,
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "identity" | "linear" => Ok(Activation::Identity),
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "sigmoid" | "logistic" => Ok(Activation::Sigmoid),
            "softmax" => Ok(Activation::Softmax),
            other => Err(format!(
                "unknown activation `{other}`: use relu, tanh, sigmoid, softmax or identity"
            )),
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Softmax => "softmax",
        })
    }
}

/// One dense layer: `activation(x · W + b)` with `W` of shape `[inputs, units]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub inputs: usize,
    pub units: usize,
    pub activation: Activation,
}

/// The estimator: which kind, and its stack of dense layers. Linear and logistic models are
/// one layer; an MLP is several. Weights live in the payload as `layers.{i}.weight` and
/// `layers.{i}.bias`. An imported ONNX model has no layers and an `onnx` section instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// `linear`, `logistic`, `mlp` or `onnx`.
    pub kind: String,
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<OnnxSpec>,
}

/// How tabular rows feed an imported ONNX graph and where its answers are.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OnnxSpec {
    /// CSV columns, in the order they fill the graph's matrix input (or, when the graph has one
    /// input per column, the columns feeding the inputs of the same names).
    pub features: Vec<String>,
    /// The matrix input (empty when the graph takes one input per column).
    #[serde(default)]
    pub input: String,
    /// The output holding the predicted label, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The output holding class probabilities (classification) or the prediction (regression).
    pub scores: String,
    /// Who wrote the graph (`producer_name producer_version`).
    #[serde(default)]
    pub producer: String,
    /// Operator set versions by domain (`` for the default domain).
    #[serde(default)]
    pub opsets: BTreeMap<String, i64>,
}

/// The payload file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub file: String,
    pub sha256: String,
}

/// Where the model came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// SHA-256 of the training CSV's bytes.
    pub dataset_sha256: String,
    /// The training CSV as given on the command line.
    pub dataset: String,
    /// Rows read with a target.
    pub rows: u64,
    /// Rows dropped because their target was missing.
    pub rows_dropped: u64,
    /// Rows in the train, validation and test splits.
    pub split: [u64; 3],
    pub seed: u64,
    pub slipway_version: String,
    /// RFC 3339 UTC time of training.
    pub created_at: String,
}

/// `slipway.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub name: String,
    pub task: Task,
    pub framework: Framework,
    pub target: TargetSpec,
    pub signature: Signature,
    pub features: Vec<FeatureSpec>,
    pub model: ModelSpec,
    pub payload: Payload,
    /// Metrics of the trained model (undefined ones, such as ROC-AUC on a single class, are
    /// left out), computed on the rows `evaluated_on` names.
    pub metrics: BTreeMap<String, f64>,
    /// Which rows `metrics` come from: `test` (held out from the data), `test_data` (a separate
    /// file), `validation` (no test split) or `train` (neither: optimistic).
    #[serde(default)]
    pub evaluated_on: String,
    /// Training parameters as given (and defaulted).
    pub params: serde_json::Value,
    pub lineage: Lineage,
}

/// The parts of an answer, one shape per task whatever the framework: the outputs of a native
/// package, the columns of `predict`'s CSV and the fields of a V1 prediction. Binary:
/// `probability` (of `classes[1]`) and `label`; multiclass: `probabilities` (in `classes` order)
/// and `label`; regression: `prediction`.
pub mod answer {
    pub const PROBABILITY: &str = "probability";
    pub const PROBABILITIES: &str = "probabilities";
    pub const LABEL: &str = "label";
    pub const PREDICTION: &str = "prediction";
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn from_json(text: &str) -> Result<Self, CoreError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| CoreError::InvalidManifest(e.to_string()))?;
        let found = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64);
        match found {
            Some(v) if v > u64::from(FORMAT_VERSION) => {
                return Err(CoreError::UnsupportedFormat {
                    found: u32::try_from(v).unwrap_or(u32::MAX),
                    supported: FORMAT_VERSION,
                });
            }
            Some(_) => {}
            None => return Err(CoreError::InvalidManifest("no format_version".into())),
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| CoreError::InvalidManifest(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The output that holds the scores: class probabilities or the prediction.
    pub fn scores_output(&self) -> &str {
        match (&self.model.onnx, self.task) {
            (Some(spec), _) => &spec.scores,
            (None, Task::BinaryClassification) => answer::PROBABILITY,
            (None, Task::MulticlassClassification) => answer::PROBABILITIES,
            (None, Task::Regression) => answer::PREDICTION,
        }
    }

    /// The decision threshold chosen at training (0.5 unless `--threshold` said otherwise).
    pub fn threshold(&self) -> f64 {
        self.target.threshold.unwrap_or(0.5)
    }

    /// The label for one row of scores (binary: the positive class's probability, at or above
    /// `threshold` → `classes[1]`; multiclass: the most probable class, the first on a tie;
    /// regression: empty). One rule for `predict`, `eval`, V1 and V2, whatever the framework.
    pub fn label(&self, scores: &[f64], threshold: f64) -> &str {
        let classes = &self.target.classes;
        let at = match self.task {
            Task::BinaryClassification => {
                usize::from(scores.first().is_some_and(|&p| p >= threshold))
            }
            Task::MulticlassClassification => {
                scores
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f64::NEG_INFINITY),
                        |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                    )
                    .0
            }
            Task::Regression => return "",
        };
        classes.get(at).map_or("", String::as_str)
    }

    /// Checks that the parts agree with each other: the layer stack chains, its input width is
    /// the encoded feature width, its output width fits the task.
    pub fn check(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::InvalidManifest(m));
        let file = &self.payload.file;
        if file.is_empty() || file == "." || file == ".." || file.contains(['/', '\\', '\0']) {
            return bad(format!(
                "payload file `{file}` must be a plain file name inside the package folder"
            ));
        }
        if self.framework == Framework::Onnx {
            if self.model.onnx.is_none() {
                return bad("an ONNX package needs a model.onnx section".into());
            }
            return self.check_target();
        }
        let width: usize = self.features.iter().map(|f| f.kind.width()).sum();
        let Some(first) = self.model.layers.first() else {
            return bad("the model has no layer".into());
        };
        if self.framework == Framework::Native && first.inputs != width {
            return bad(format!(
                "the first layer takes {} inputs but the features encode to {width}",
                first.inputs
            ));
        }
        for pair in self.model.layers.windows(2) {
            if pair[0].units != pair[1].inputs {
                return bad("the layers do not chain".into());
            }
        }
        let out = self.model.layers.last().map_or(0, |l| l.units);
        let expected = match self.task {
            Task::BinaryClassification | Task::Regression => 1,
            Task::MulticlassClassification => self.target.classes.len(),
        };
        if out != expected {
            return bad(format!(
                "the model gives {out} outputs, the {} task needs {expected}",
                self.task
            ));
        }
        self.check_target()
    }

    /// Checks that the task, classes, positive class and threshold agree.
    fn check_target(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::InvalidManifest(m));
        let classes = &self.target.classes;
        match self.task {
            Task::BinaryClassification if classes.len() != 2 => {
                return bad(format!(
                    "a binary classifier needs 2 classes, not {}",
                    classes.len()
                ));
            }
            Task::MulticlassClassification if classes.len() < 3 => {
                return bad(format!(
                    "a multiclass classifier needs 3 or more classes, not {}",
                    classes.len()
                ));
            }
            Task::Regression if !classes.is_empty() => {
                return bad("a regression model has no classes".into());
            }
            Task::BinaryClassification | Task::MulticlassClassification | Task::Regression => {}
        }
        if let Some(p) = &self.target.positive_class
            && classes.get(1) != Some(p)
        {
            return bad(format!(
                "the positive class `{p}` must be the second of the classes"
            ));
        }
        if let Some(t) = self.target.threshold
            && !(t > 0.0 && t < 1.0)
        {
            return bad(format!("the threshold {t} is not strictly between 0 and 1"));
        }
        Ok(())
    }
}

/// Formats seconds since the Unix epoch as an RFC 3339 UTC timestamp.
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_752_000), "2026-11-27T04:00:00Z");
    }

    #[test]
    fn newer_format_is_refused_with_upgrade_hint() {
        let err = Manifest::from_json(r#"{"format_version": 99}"#).unwrap_err();
        assert!(err.to_string().contains("upgrade slipway"), "{err}");
    }

    #[test]
    fn payload_must_stay_inside_the_package() {
        let text = r#"{"format_version": 1, "name": "m", "task": "regression", "framework": "native",
            "target": {"name": "y"}, "signature": {"inputs": [], "outputs": []},
            "features": [{"name": "x", "kind": "numeric", "median": 0.0, "mean": 0.0, "std": 1.0,
                          "profile": {"missing": 0.0, "shares": []}}],
            "model": {"kind": "linear", "layers": [{"inputs": 1, "units": 1, "activation": "identity"}]},
            "payload": {"file": "FILE", "sha256": ""}, "metrics": {}, "params": null,
            "lineage": {"dataset_sha256": "", "dataset": "", "rows": 1, "rows_dropped": 0,
                        "split": [1, 0, 0], "seed": 1, "slipway_version": "0", "created_at": ""}}"#;
        assert!(Manifest::from_json(&text.replace("FILE", "model.safetensors")).is_ok());
        // A task that does not match its classes is refused.
        let binary = text
            .replace("FILE", "model.safetensors")
            .replace(
                r#""task": "regression""#,
                r#""task": "binary_classification""#,
            )
            .replace(
                r#""target": {"name": "y"}"#,
                r#""target": {"name": "y", "classes": ["a", "b", "c"]}"#,
            );
        let err = Manifest::from_json(&binary).unwrap_err();
        assert!(err.to_string().contains("needs 2 classes, not 3"), "{err}");
        for bad in ["/dev/zero", "../../etc/passwd", "..", "", "a\\\\b"] {
            let err = Manifest::from_json(&text.replace("FILE", bad)).unwrap_err();
            assert!(err.to_string().contains("plain file name"), "{bad}: {err}");
        }
    }

    #[test]
    fn garbage_is_an_invalid_manifest() {
        let err = Manifest::from_json("not json").unwrap_err();
        assert!(matches!(err, CoreError::InvalidManifest(_)));
        let err = Manifest::from_json(r#"{"name": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("format_version"), "{err}");
    }
}
