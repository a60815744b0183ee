//! `slipway train`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use slipway_core::Activation;
use slipway_learn::data::ColumnKind;
use slipway_learn::dataset::{DatasetSpec, TargetKind};
use slipway_learn::mlp::{Loss, Optimizer};
use slipway_learn::train::{self, InputLayout, ModelKind, TrainParams, TrainSpec, Trained};
use slipway_learn::{package, tune};

use crate::output::{self, EpochBar};

#[derive(Clone, Copy, ValueEnum)]
pub enum ModelArg {
    /// Ridge regression (closed form).
    Linear,
    /// Logistic regression, binary or multinomial (L-BFGS).
    Logistic,
    /// Multi-layer perceptron (mini-batch SGD or Adam).
    Mlp,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum InputArg {
    /// One tensor per raw column (FP64 or BYTES): mixed numeric and categorical data.
    Columns,
    /// One FP64 matrix [rows, features] named `features`, as scikit-learn, MLServer and
    /// Triton clients send rows; every feature must be numeric.
    Matrix,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TaskArg {
    Auto,
    Classification,
    Regression,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LossArg {
    CrossEntropy,
    Mse,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OptimizerArg {
    Adam,
    Sgd,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ActivationArg {
    Relu,
    Tanh,
    Sigmoid,
    Identity,
    Softmax,
}

impl From<ActivationArg> for Activation {
    fn from(a: ActivationArg) -> Self {
        match a {
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::Sigmoid => Activation::Sigmoid,
            ActivationArg::Identity => Activation::Identity,
            ActivationArg::Softmax => Activation::Softmax,
        }
    }
}

/// Data and model options shared by `train` and `tune`.
#[derive(Args, Clone)]
pub struct ModelOptions {
    /// Training data: a CSV file with a header row.
    #[arg(long, value_name = "F.csv")]
    pub data: PathBuf,
    /// The CSV's field delimiter, e.g. ';' or tab (default: read from the header line; a
    /// gzip-compressed file is read as it is).
    #[arg(long, value_parser = crate::cmd::delimiter, value_name = "CHAR")]
    pub delimiter: Option<u8>,
    /// The column to predict.
    #[arg(long, value_name = "COL")]
    pub target: String,
    /// The estimator.
    #[arg(long, value_enum, default_value = "logistic")]
    pub model: ModelArg,
    /// For mlp: classification or regression (auto: text or 0/1 targets are classes).
    #[arg(long, value_enum, default_value = "auto")]
    pub task: TaskArg,
    /// Use only these feature columns (comma-separated; default: all but the target).
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    pub features: Option<Vec<String>>,
    /// Leave these columns out (identifiers, leaks).
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    pub ignore: Vec<String>,
    /// Read these columns as categories even if they look numeric.
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    pub categorical: Vec<String>,
    /// Read these columns as numbers (a non-number is then an error).
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    pub numeric: Vec<String>,
    /// For binary targets: the class whose probability the model gives (default: 1, yes, true,
    /// bad, default, fraud or malignant when present, else the second in sort order).
    #[arg(long, value_name = "CLASS")]
    pub positive_class: Option<String>,
    /// MLP hidden layer sizes, e.g. 32,16 or 32x16; '' for none (a single dense layer).
    #[arg(long, default_value = "32,16", value_name = "SIZES")]
    pub hidden: String,
    /// Hidden layer activation.
    #[arg(long, value_enum, default_value = "relu")]
    pub activation: ActivationArg,
    /// Output activation (default: sigmoid, softmax or identity by task).
    #[arg(long, value_enum)]
    pub output_activation: Option<ActivationArg>,
    /// Loss (default: cross-entropy for classes, mse for values).
    #[arg(long, value_enum)]
    pub loss: Option<LossArg>,
    /// Optimizer for mlp.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerArg,
    /// Learning rate for mlp.
    #[arg(long, default_value_t = 0.001)]
    pub lr: f64,
    /// Momentum for --optimizer sgd.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Mini-batch size for mlp.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Passes over the training rows for mlp.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// L2 penalty: adds l2/2·‖W‖² to the mean loss (default: 1/n for logistic, as
    /// scikit-learn's C=1; 0 for linear; 1e-4 for mlp).
    #[arg(long)]
    pub l2: Option<f64>,
    /// Stop an mlp after this many epochs without validation-loss improvement (0: never).
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Most L-BFGS iterations for logistic.
    #[arg(long, default_value_t = 1000)]
    pub max_iter: usize,
    /// Seed for the split, initialisation and shuffling: same seed, same model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of rows held out for the test metrics.
    #[arg(long, default_value_t = 0.2)]
    pub test_size: f64,
    /// Share of rows held out for early stopping.
    #[arg(long, default_value_t = 0.1)]
    pub validation_size: f64,
    /// Test on this labelled CSV instead of splitting rows off --data.
    #[arg(long, value_name = "F.csv")]
    pub test_data: Option<PathBuf>,
    /// Probability at or above which a binary prediction is the positive class.
    #[arg(long, default_value_t = 0.5, value_parser = crate::cmd::threshold)]
    pub threshold: f64,
    /// The package's name (default: the --out folder's name; for `tune`, the data file's).
    #[arg(long)]
    pub name: Option<String>,
    /// How the served package takes its inputs.
    #[arg(long, value_enum, default_value = "columns")]
    pub input: InputArg,
}

impl ModelOptions {
    /// The training request these options describe.
    pub fn spec(&self) -> Result<TrainSpec> {
        let mut kinds = HashMap::new();
        for c in &self.categorical {
            kinds.insert(c.clone(), ColumnKind::Categorical);
        }
        for c in &self.numeric {
            if kinds.insert(c.clone(), ColumnKind::Numeric).is_some() {
                return Err(slipway_learn::LearnError::Param(format!(
                    "column `{c}` is given as both --categorical and --numeric"
                ))
                .into());
            }
        }
        let params = TrainParams {
            model: match self.model {
                ModelArg::Linear => ModelKind::Linear,
                ModelArg::Logistic => ModelKind::Logistic,
                ModelArg::Mlp => ModelKind::Mlp,
            },
            target_kind: match self.task {
                TaskArg::Auto => None,
                TaskArg::Classification => Some(TargetKind::Classes),
                TaskArg::Regression => Some(TargetKind::Values),
            },
            hidden: tune::parse_hidden(&self.hidden)?,
            activation: self.activation.into(),
            output_activation: self.output_activation.map(Into::into),
            loss: self.loss.map(|l| match l {
                LossArg::CrossEntropy => Loss::CrossEntropy,
                LossArg::Mse => Loss::Mse,
            }),
            optimizer: match self.optimizer {
                OptimizerArg::Adam => Optimizer::Adam,
                OptimizerArg::Sgd => Optimizer::Sgd,
            },
            lr: self.lr,
            momentum: self.momentum,
            batch_size: self.batch_size,
            epochs: self.epochs,
            l2: self.l2,
            patience: self.patience,
            min_delta: 1e-4,
            max_iter: self.max_iter,
            seed: self.seed,
            test_size: self.test_size,
            validation_size: self.validation_size,
            threshold: self.threshold,
        };
        let name = self.name.clone().unwrap_or_else(|| {
            self.data
                .file_stem()
                .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
        });
        Ok(TrainSpec {
            data: self.data.clone(),
            test_data: self.test_data.clone(),
            dataset: DatasetSpec {
                target: self.target.clone(),
                features: self.features.clone(),
                ignore: self.ignore.clone(),
                kinds,
                positive_class: self.positive_class.clone(),
                delimiter: self.delimiter,
            },
            params,
            name,
            input: match self.input {
                InputArg::Columns => InputLayout::Columns,
                InputArg::Matrix => InputLayout::Matrix,
            },
        })
    }
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelOptions,
    /// Where to write the package (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print one JSON object instead of tables; no progress bar.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let mut spec = args.model.spec()?;
    // The package is named after its folder unless --name says otherwise: two models trained
    // from one CSV into credit-logistic/ and credit-mlp/ are served under those names.
    if args.model.name.is_none()
        && let Some(folder) = args.out.file_name().and_then(|n| n.to_str())
        && !folder.is_empty()
    {
        spec.name = folder.to_string();
    }
    let bar = EpochBar::new(
        !args.json && spec.params.model == ModelKind::Mlp,
        spec.params.epochs,
    );
    let trained = train::train(&spec, &mut |e| bar.epoch(e))?;
    bar.finish();
    let manifest = package::write(&args.out, &trained.manifest, &trained.network)?;
    let trained = Trained {
        manifest,
        ..trained
    };
    output::warnings(&trained);
    if args.json {
        output::print_json(&output::trained_json(&trained, &args.out));
    } else {
        print!("{}", output::trained_text(&trained, &args.out));
        println!(
            "Next: slipway predict --model {} --data NEW.csv --out scores.csv",
            args.out.display()
        );
    }
    Ok(())
}
