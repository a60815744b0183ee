//! From a CSV to a trained, evaluated model: the orchestration behind `slipway train`.

use std::path::PathBuf;
use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use serde::Serialize;
use slipway_core::{Activation, FeatureKind, Manifest, Task};

use crate::dataset::{self, DatasetSpec, Target, TargetKind};
use crate::error::{LearnError, Result};
use crate::linear::{fit_logistic, fit_ridge, targets_matrix};
use crate::metrics::{self, Report};
use crate::mlp::{self, EpochReport, Loss, MlpParams, Optimizer};
use crate::native::manifest_for;
pub use crate::native::{InputLayout, MATRIX_INPUT, matrix_width, signature_for};
use crate::nn::Network;
use crate::{pipeline, split};

/// The estimator families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Ridge regression, closed form.
    Linear,
    /// L2-regularised logistic regression (binary or multinomial), L-BFGS.
    Logistic,
    /// Multi-layer perceptron, mini-batch SGD or Adam.
    Mlp,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Linear => "linear",
            ModelKind::Logistic => "logistic",
            ModelKind::Mlp => "mlp",
        })
    }
}

/// Every training parameter, with Slipway's defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainParams {
    pub model: ModelKind,
    /// `None`: inferred from the model and the target (see [`dataset::load`]).
    pub target_kind: Option<TargetKind>,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// `None`: sigmoid (binary), softmax (multiclass), identity (regression).
    pub output_activation: Option<Activation>,
    /// `None`: cross-entropy for classes, MSE for values.
    pub loss: Option<Loss>,
    pub optimizer: Optimizer,
    pub lr: f64,
    pub momentum: f64,
    pub batch_size: usize,
    pub epochs: usize,
    /// `None`: `1/n_train` for logistic (scikit-learn's `C = 1`), 0 for linear, 1e-4 for mlp.
    pub l2: Option<f64>,
    pub patience: usize,
    pub min_delta: f64,
    pub max_iter: usize,
    pub seed: u64,
    pub test_size: f64,
    pub validation_size: f64,
    /// Probability at or above which a binary prediction is the positive class.
    pub threshold: f64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            model: ModelKind::Logistic,
            target_kind: None,
            hidden: vec![32, 16],
            activation: Activation::Relu,
            output_activation: None,
            loss: None,
            optimizer: Optimizer::Adam,
            lr: 0.001,
            momentum: 0.9,
            batch_size: 32,
            epochs: 200,
            l2: None,
            patience: 10,
            min_delta: 1e-4,
            max_iter: 1000,
            seed: 42,
            test_size: 0.2,
            validation_size: 0.1,
            threshold: 0.5,
        }
    }
}

impl TrainParams {
    /// Checks ranges that do not depend on the data.
    pub fn validate(&self) -> Result<()> {
        let frac = |v: f64, name: &str| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(LearnError::Param(format!(
                    "{name} must be in [0, 1), got {v}"
                )))
            }
        };
        frac(self.test_size, "--test-size")?;
        frac(self.validation_size, "--validation-size")?;
        if self.test_size + self.validation_size >= 0.9 {
            return Err(LearnError::Param(
                "--test-size plus --validation-size leave under 10% of the rows to train on".into(),
            ));
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(LearnError::Param(
                "--threshold must be strictly between 0 and 1".into(),
            ));
        }
        if let Some(l2) = self.l2
            && !(l2 >= 0.0 && l2.is_finite())
        {
            return Err(LearnError::Param("--l2 must be zero or positive".into()));
        }
        Ok(())
    }

    /// The validation share actually held out: only an MLP uses validation rows (for early
    /// stopping); linear models train on them.
    pub fn effective_validation_size(&self) -> f64 {
        match self.model {
            ModelKind::Mlp => self.validation_size,
            ModelKind::Linear | ModelKind::Logistic => 0.0,
        }
    }

    fn target_kind(&self) -> Option<TargetKind> {
        match self.model {
            ModelKind::Linear => Some(TargetKind::Values),
            ModelKind::Logistic => Some(TargetKind::Classes),
            ModelKind::Mlp => self.target_kind,
        }
    }
}

/// A training request.
#[derive(Debug, Clone)]
pub struct TrainSpec {
    pub data: PathBuf,
    /// A held-out file to test on instead of splitting one off `data`.
    pub test_data: Option<PathBuf>,
    pub dataset: DatasetSpec,
    pub params: TrainParams,
    /// The package's name.
    pub name: String,
    /// How the served package takes its inputs.
    pub input: InputLayout,
}

/// How the estimator's fit went.
#[derive(Debug, Clone, Serialize)]
pub struct FitInfo {
    pub fit_seconds: f64,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// L-BFGS iterations (logistic).
    pub iterations: usize,
    pub converged: bool,
    pub l2: f64,
    pub n_params: usize,
    pub history: Vec<EpochReport>,
}

/// A trained and evaluated model, ready to be written as a package.
#[derive(Debug, Clone)]
pub struct Trained {
    pub manifest: Manifest,
    pub network: Network,
    pub report: Report,
    pub fit: FitInfo,
    pub rows_dropped: usize,
    /// Test-split cells whose category was not seen in training.
    pub unseen_categories: u64,
}

/// The task a target and model make.
pub fn task_of(target: &Target) -> Task {
    match target {
        Target::Classes { classes, .. } if classes.len() == 2 => Task::BinaryClassification,
        Target::Classes { .. } => Task::MulticlassClassification,
        Target::Values(_) => Task::Regression,
    }
}

/// The target matrix for `rows`: 0/1, one-hot or values.
pub fn target_rows(target: &Target, rows: &[usize]) -> Array2<f64> {
    match target {
        Target::Classes { codes, classes } => {
            let y: Vec<u32> = rows.iter().map(|r| codes[*r]).collect();
            targets_matrix(&y, if classes.len() == 2 { 1 } else { classes.len() })
        }
        Target::Values(v) => Array2::from_shape_fn((rows.len(), 1), |(i, _)| v[rows[i]]),
    }
}

/// The MLP parameters `params` imply for a task.
pub fn mlp_params(params: &TrainParams, task: Task, l2: f64) -> MlpParams {
    let output = params.output_activation.unwrap_or(match task {
        Task::BinaryClassification => Activation::Sigmoid,
        Task::MulticlassClassification => Activation::Softmax,
        Task::Regression => Activation::Identity,
    });
    let loss = params.loss.unwrap_or(if task.is_classification() {
        Loss::CrossEntropy
    } else {
        Loss::Mse
    });
    MlpParams {
        hidden: params.hidden.clone(),
        activation: params.activation,
        output_activation: output,
        loss,
        optimizer: params.optimizer,
        lr: params.lr,
        momentum: params.momentum,
        batch_size: params.batch_size,
        epochs: params.epochs,
        l2,
        patience: params.patience,
        min_delta: params.min_delta,
        seed: params.seed,
    }
}

/// Fits the chosen estimator on encoded rows.
pub fn fit_estimator(
    params: &TrainParams,
    target: &Target,
    x: ArrayView2<'_, f64>,
    train_rows: &[usize],
    validation: Option<(ArrayView2<'_, f64>, &[usize])>,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Network, FitInfo)> {
    let task = task_of(target);
    let start = Instant::now();
    let n = train_rows.len();
    let l2 = params.l2.unwrap_or(match params.model {
        ModelKind::Logistic => 1.0 / n.max(1) as f64,
        ModelKind::Linear => 0.0,
        ModelKind::Mlp => 1e-4,
    });
    let mut info = FitInfo {
        fit_seconds: 0.0,
        epochs_run: 0,
        best_epoch: 0,
        stopped_early: false,
        iterations: 0,
        converged: true,
        l2,
        n_params: 0,
        history: Vec::new(),
    };
    let network = match (params.model, target) {
        (ModelKind::Linear, Target::Values(v)) => {
            let y = ndarray::Array1::from_iter(train_rows.iter().map(|r| v[*r]));
            fit_ridge(x, y.view(), l2)?
        }
        (ModelKind::Logistic, Target::Classes { codes, classes }) => {
            let y: Vec<u32> = train_rows.iter().map(|r| codes[*r]).collect();
            let fit = fit_logistic(x, &y, classes.len(), l2, params.max_iter)?;
            info.iterations = fit.iterations;
            info.converged = fit.converged;
            fit.network
        }
        (ModelKind::Mlp, _) => {
            let y = target_rows(target, train_rows);
            let val = validation.map(|(vx, rows)| (vx, target_rows(target, rows)));
            let p = mlp_params(params, task, l2);
            match (task, p.output_activation) {
                (Task::BinaryClassification | Task::Regression, Activation::Softmax) => {
                    return Err(LearnError::Param(
                        "a softmax over one output is always 1; use --output-activation sigmoid"
                            .into(),
                    ));
                }
                (Task::MulticlassClassification, Activation::Softmax) => {}
                (
                    Task::MulticlassClassification,
                    Activation::Sigmoid
                    | Activation::Identity
                    | Activation::Relu
                    | Activation::Tanh,
                ) => {
                    return Err(LearnError::Param(
                        "multiclass outputs must be a softmax (probabilities that sum to 1)".into(),
                    ));
                }
                (
                    Task::BinaryClassification | Task::Regression,
                    Activation::Sigmoid
                    | Activation::Identity
                    | Activation::Relu
                    | Activation::Tanh,
                ) => {}
            }
            let fit = mlp::train(
                x,
                y.view(),
                val.as_ref().map(|(vx, vy)| (*vx, vy.view())),
                &p,
                on_epoch,
            )?;
            info.epochs_run = fit.history.len();
            info.best_epoch = fit.best_epoch;
            info.stopped_early = fit.stopped_early;
            info.history = fit.history;
            fit.network
        }
        (ModelKind::Linear, Target::Classes { .. }) | (ModelKind::Logistic, Target::Values(_)) => {
            return Err(LearnError::Param(format!(
                "--model {} does not fit a {task} target",
                params.model
            )));
        }
    };
    info.n_params = network.n_params();
    info.fit_seconds = start.elapsed().as_secs_f64();
    Ok((network, info))
}

/// Evaluates a network's outputs against the target rows.
pub fn evaluate(
    out: ArrayView2<'_, f64>,
    target: &Target,
    rows: &[usize],
    threshold: f64,
) -> Report {
    match target {
        Target::Classes { codes, classes } if classes.len() == 2 => {
            let y: Vec<bool> = rows.iter().map(|r| codes[*r] == 1).collect();
            let p: Vec<f64> = out.column(0).to_vec();
            Report::Binary(metrics::binary(&y, &p, threshold))
        }
        Target::Classes { codes, classes } => {
            let y: Vec<usize> = rows.iter().map(|r| codes[*r] as usize).collect();
            Report::Multiclass(metrics::multiclass(&y, out, classes))
        }
        Target::Values(v) => {
            let y: Vec<f64> = rows.iter().map(|r| v[*r]).collect();
            Report::Regression(metrics::regression(&y, &out.column(0).to_vec()))
        }
    }
}

/// Most distinct numbers a logistic model's target may have before it is taken for a
/// measurement rather than class labels.
pub const MOST_NUMERIC_CLASSES: usize = 20;

/// Logistic regression on a numeric target with many distinct values (miles per gallon) would
/// build one class per value: refused, naming the model that fits a measurement.
fn refuse_numeric_classes(params: &TrainParams, target: &Target, name: &str) -> Result<()> {
    if let Target::Classes { classes, .. } = target
        && params.model == ModelKind::Logistic
        && classes.len() > MOST_NUMERIC_CLASSES
        && classes.iter().all(|c| c.parse::<f64>().is_ok())
    {
        return Err(LearnError::Param(format!(
            "the target `{name}` holds {} distinct numbers, a measurement rather than classes: \
             use --model linear (or --model mlp, which picks regression); logistic regression \
             would make one class per value",
            classes.len()
        )));
    }
    Ok(())
}

/// Reads, splits, fits the pipeline and the estimator, and evaluates on the test rows.
pub fn train(spec: &TrainSpec, on_epoch: &mut dyn FnMut(&EpochReport)) -> Result<Trained> {
    let params = &spec.params;
    params.validate()?;
    let data = dataset::load(&spec.data, &spec.dataset, params.target_kind())?;
    refuse_numeric_classes(params, &data.target, &data.target_name)?;
    let task = task_of(&data.target);
    let rows = data.rows();
    let test_size = if spec.test_data.is_some() {
        0.0
    } else {
        params.test_size
    };
    let parts = split::split(
        &rows,
        data.target.strata(),
        test_size,
        params.effective_validation_size(),
        params.seed,
    );
    if parts.train.is_empty() {
        return Err(LearnError::data(
            &spec.data,
            "no row is left to train on after the split",
        ));
    }
    let features = pipeline::fit(&data.frame, &data.feature_columns, &parts.train)?;
    if spec.input == InputLayout::Matrix {
        let text: Vec<&str> = features
            .iter()
            .filter(|f| matches!(f.kind, FeatureKind::Categorical { .. }))
            .map(|f| f.name.as_str())
            .collect();
        if !text.is_empty() {
            return Err(LearnError::data(
                &spec.data,
                format!(
                    "a matrix input holds numbers only, and {} {} categorical; train with one input per column (the default), or leave {} out with --ignore",
                    text.join(", "),
                    if text.len() == 1 { "is" } else { "are" },
                    if text.len() == 1 { "it" } else { "them" },
                ),
            ));
        }
    }
    let (x_train, _) = pipeline::transform(&features, &data.frame, &parts.train)?;
    let (x_val, _) = pipeline::transform(&features, &data.frame, &parts.validation)?;
    let validation =
        (!parts.validation.is_empty()).then_some((x_val.view(), parts.validation.as_slice()));
    let (network, fit) = fit_estimator(
        params,
        &data.target,
        x_train.view(),
        &parts.train,
        validation,
        on_epoch,
    )?;

    // Test on the held-out split, or on the separate test file.
    let classes = match &data.target {
        Target::Classes { classes, .. } => classes.clone(),
        Target::Values(_) => Vec::new(),
    };
    let (report, unseen, test_rows, evaluated_on) = match &spec.test_data {
        Some(path) => {
            let test = dataset::load_for_model(
                path,
                &features,
                &data.target_name,
                &classes,
                spec.dataset.delimiter,
            )?;
            let rows = test.rows();
            let (x, unseen) = pipeline::transform(&features, &test.frame, &rows)?;
            let out = network.forward(x.view());
            (
                evaluate(out.view(), &test.target, &rows, params.threshold),
                unseen,
                rows.len(),
                "test_data",
            )
        }
        None if parts.test.is_empty() => {
            // No test split asked for: report on the validation split, else on training rows.
            let (x, rows, on) = if parts.validation.is_empty() {
                (x_train.view(), &parts.train, "train")
            } else {
                (x_val.view(), &parts.validation, "validation")
            };
            let out = network.forward(x);
            (
                evaluate(out.view(), &data.target, rows, params.threshold),
                0,
                0,
                on,
            )
        }
        None => {
            let (x, unseen) = pipeline::transform(&features, &data.frame, &parts.test)?;
            let out = network.forward(x.view());
            (
                evaluate(out.view(), &data.target, &parts.test, params.threshold),
                unseen,
                parts.test.len(),
                "test",
            )
        }
    };
    let manifest = manifest_for(
        spec,
        &data,
        task,
        features,
        &network,
        &report,
        &fit,
        [
            parts.train.len() as u64,
            parts.validation.len() as u64,
            test_rows as u64,
        ],
        evaluated_on,
    );
    Ok(Trained {
        manifest,
        network,
        report,
        fit,
        rows_dropped: data.rows_dropped,
        unseen_categories: unseen,
    })
}
