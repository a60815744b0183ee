//! Hyperparameter search: k-fold cross-validation over a grid, or a random sample of it, run in
//! parallel over the cores; the winner is retrained on the full training split and tested.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::Serialize;
use slipway_core::{Activation, Task};

use crate::dataset::{self, Dataset};
use crate::error::{LearnError, Result};
use crate::metrics;
use crate::mlp::Optimizer;
use crate::rng::Rng;
use crate::train::{self, ModelKind, TrainParams, TrainSpec, Trained, fit_estimator, task_of};
use crate::{pipeline, split};

/// One axis of the search: a parameter and the values to try.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Values,
}

/// The values of an axis.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Listed values, as written.
    List(Vec<String>),
    /// `lo..hi`: sampled log-uniformly (random search only).
    Range(f64, f64),
}

/// The keys a grid may set.
pub const KEYS: &[&str] = &[
    "lr",
    "batch_size",
    "hidden",
    "l2",
    "epochs",
    "activation",
    "optimizer",
    "momentum",
    "patience",
];

/// Parses `lr=0.01,0.001;hidden=16,32x16;l2=1e-4..1e-2`.
pub fn parse_grid(text: &str) -> Result<Vec<Axis>> {
    let mut axes: Vec<Axis> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, values) = part
            .split_once('=')
            .ok_or_else(|| LearnError::Param(format!("grid entry `{part}` is not KEY=V1,V2,…")))?;
        let key = key.trim().replace('-', "_");
        if !KEYS.contains(&key.as_str()) {
            return Err(LearnError::Param(format!(
                "grid key `{key}` is not one of: {}",
                KEYS.join(", ")
            )));
        }
        if axes.iter().any(|a| a.key == key) {
            return Err(LearnError::Param(format!("grid key `{key}` appears twice")));
        }
        let values = match values.split_once("..") {
            Some((lo, hi)) => {
                let parse = |v: &str| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| *x > 0.0 && x.is_finite())
                        .ok_or_else(|| {
                            LearnError::Param(format!(
                                "range bound `{v}` of `{key}` is not a positive number"
                            ))
                        })
                };
                let (lo, hi) = (parse(lo)?, parse(hi)?);
                if lo >= hi {
                    return Err(LearnError::Param(format!(
                        "range of `{key}` must go from low to high"
                    )));
                }
                Values::Range(lo, hi)
            }
            None => Values::List(values.split(',').map(|v| v.trim().to_string()).collect()),
        };
        let axis = Axis { key, values };
        // Check every listed value once, up front.
        if let Values::List(list) = &axis.values {
            for v in list {
                apply(&mut TrainParams::default(), &axis.key, v)?;
            }
        }
        axes.push(axis);
    }
    if axes.is_empty() {
        return Err(LearnError::Param(
            "the grid is empty; e.g. --grid 'lr=0.01,0.001;hidden=16,32x16'".into(),
        ));
    }
    Ok(axes)
}

/// Sets one parameter from its text.
pub fn apply(params: &mut TrainParams, key: &str, value: &str) -> Result<()> {
    let bad = || LearnError::Param(format!("`{value}` is not a valid value for `{key}`"));
    let float = || value.parse::<f64>().map_err(|_| bad());
    let int = || value.parse::<usize>().map_err(|_| bad());
    match key {
        "lr" => params.lr = float()?,
        "l2" => params.l2 = Some(float()?),
        "momentum" => params.momentum = float()?,
        "batch_size" => params.batch_size = int()?,
        "epochs" => params.epochs = int()?,
        "patience" => params.patience = int()?,
        "hidden" => params.hidden = parse_hidden(value).map_err(|_| bad())?,
        "activation" => params.activation = value.parse::<Activation>().map_err(|_| bad())?,
        "optimizer" => {
            params.optimizer = match value {
                "adam" => Optimizer::Adam,
                "sgd" => Optimizer::Sgd,
                _ => return Err(bad()),
            }
        }
        _ => return Err(LearnError::Param(format!("`{key}` cannot be tuned"))),
    }
    Ok(())
}

/// Parses hidden layer sizes: `32,16` or `32x16`; empty or `none` for no hidden layer.
pub fn parse_hidden(text: &str) -> Result<Vec<usize>> {
    let text = text.trim();
    if text.is_empty() || text == "none" {
        return Ok(Vec::new());
    }
    text.split([',', 'x'])
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    LearnError::Param(format!(
                        "hidden layer size `{s}` is not a positive whole number"
                    ))
                })
        })
        .collect()
}

/// How candidates are drawn from the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// Every combination.
    Grid,
    /// This many combinations drawn at random (ranges sampled log-uniformly).
    Random { trials: usize },
}

/// A candidate: the values it sets, in grid order.
pub type Candidate = Vec<(String, String)>;

/// The candidates a search tries.
pub fn candidates(axes: &[Axis], search: Search, seed: u64) -> Result<Vec<Candidate>> {
    match search {
        Search::Grid => {
            let mut out: Vec<Candidate> = vec![Vec::new()];
            for axis in axes {
                let Values::List(values) = &axis.values else {
                    return Err(LearnError::Param(format!(
                        "`{}` is a range; ranges need --search random",
                        axis.key
                    )));
                };
                out = out
                    .into_iter()
                    .flat_map(|c| {
                        values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.push((axis.key.clone(), v.clone()));
                            c
                        })
                    })
                    .collect();
            }
            Ok(out)
        }
        Search::Random { trials } => {
            let mut rng = Rng::new(seed ^ 0x005E_A2C4);
            let mut out: Vec<Candidate> = Vec::new();
            let mut attempts = 0;
            while out.len() < trials && attempts < trials * 50 {
                attempts += 1;
                let c: Candidate = axes
                    .iter()
                    .map(|a| {
                        let v = match &a.values {
                            Values::List(list) => list[rng.below(list.len())].clone(),
                            Values::Range(lo, hi) => {
                                let x = (lo.ln() + rng.next_f64() * (hi.ln() - lo.ln())).exp();
                                match a.key.as_str() {
                                    "batch_size" | "epochs" | "patience" => {
                                        format!("{}", x.round().max(1.0))
                                    }
                                    _ => format!("{x:.3e}"),
                                }
                            }
                        };
                        (a.key.clone(), v)
                    })
                    .collect();
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            Ok(out)
        }
    }
}

/// A tuning request.
#[derive(Debug, Clone)]
pub struct TuneSpec {
    pub train: TrainSpec,
    pub axes: Vec<Axis>,
    pub search: Search,
    pub folds: usize,
    /// The metric to pick by; `None`: roc_auc (binary), accuracy (multiclass), rmse (regression).
    pub metric: Option<String>,
}

/// Cross-validated figures of one candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub params: Candidate,
    pub mean: f64,
    pub std: f64,
    pub folds: Vec<f64>,
}

/// The search's outcome.
#[derive(Debug, Clone)]
pub struct Tuned {
    pub metric: String,
    pub higher_is_better: bool,
    /// Best first.
    pub ranking: Vec<Scored>,
    /// The winner retrained on the training split and evaluated on the test split.
    pub trained: Trained,
}

/// The default metric for a task.
pub fn default_metric(task: Task) -> &'static str {
    match task {
        Task::BinaryClassification => "roc_auc",
        Task::MulticlassClassification => "accuracy",
        Task::Regression => "rmse",
    }
}

/// Runs the search. `on_job` is called once per finished (candidate, fold) fit, from any thread;
/// `on_start` gets the number of fits first.
pub fn tune(
    spec: &TuneSpec,
    on_start: &mut dyn FnMut(usize),
    on_job: &(dyn Fn() + Sync),
) -> Result<Tuned> {
    let base = &spec.train.params;
    base.validate()?;
    if spec.folds < 2 {
        return Err(LearnError::Param("--folds must be at least 2".into()));
    }
    let kind = match base.model {
        ModelKind::Linear => Some(dataset::TargetKind::Values),
        ModelKind::Logistic => Some(dataset::TargetKind::Classes),
        ModelKind::Mlp => base.target_kind,
    };
    let data = dataset::load(&spec.train.data, &spec.train.dataset, kind)?;
    let task = task_of(&data.target);
    let metric = spec
        .metric
        .clone()
        .unwrap_or_else(|| default_metric(task).to_string());
    let higher = metrics::higher_is_better(&metric).ok_or_else(|| {
        LearnError::Param(format!(
            "unknown metric `{metric}`; metrics: {}",
            metrics::METRIC_NAMES.join(", ")
        ))
    })?;
    let candidates = candidates(&spec.axes, spec.search, base.seed)?;
    let params: Vec<TrainParams> = candidates
        .iter()
        .map(|c| {
            let mut p = base.clone();
            for (k, v) in c {
                apply(&mut p, k, v)?;
            }
            p.validate()?;
            Ok(p)
        })
        .collect::<Result<_>>()?;

    let rows = data.rows();
    let outer = split::split(&rows, data.target.strata(), base.test_size, 0.0, base.seed);
    let dev = outer.train;
    let dev_strata: Option<Vec<u32>> = data
        .target
        .strata()
        .map(|s| dev.iter().map(|r| s[*r]).collect());
    if spec.folds > dev.len() {
        return Err(LearnError::data(
            &spec.train.data,
            format!(
                "{} rows are too few for {} folds; use fewer --folds",
                dev.len(),
                spec.folds
            ),
        ));
    }
    if probe_report(task).get(&metric).is_none() {
        return Err(LearnError::Param(format!(
            "metric `{metric}` does not apply to {task}"
        )));
    }
    let folds = split::folds(&dev, dev_strata.as_deref(), spec.folds, base.seed);
    if folds.iter().any(Vec::is_empty) {
        return Err(LearnError::Param(format!(
            "{} rows are too few for {} folds",
            dev.len(),
            spec.folds
        )));
    }
    let jobs: Vec<(usize, usize)> = (0..params.len())
        .flat_map(|c| (0..folds.len()).map(move |f| (c, f)))
        .collect();
    on_start(jobs.len());
    let done = AtomicUsize::new(0);
    let scores: Vec<Result<f64>> = jobs
        .par_iter()
        .map(|(c, f)| {
            let held = &folds[*f];
            let fit_rows: Vec<usize> = dev
                .iter()
                .copied()
                .filter(|r| held.binary_search(r).is_err())
                .collect();
            let score = score_fold(&data, &params[*c], &fit_rows, held, &metric);
            done.fetch_add(1, Ordering::Relaxed);
            on_job();
            score
        })
        .collect();
    let mut ranking = Vec::with_capacity(params.len());
    for (c, cand) in candidates.iter().enumerate() {
        let folds: Vec<f64> = scores[c * spec.folds..(c + 1) * spec.folds]
            .iter()
            .map(|s| s.as_ref().map_or(f64::NAN, |v| *v))
            .collect();
        if let Some(Err(e)) = scores[c * spec.folds..(c + 1) * spec.folds]
            .iter()
            .find(|s| s.is_err())
        {
            return Err(match e {
                LearnError::Param(m) => {
                    LearnError::Param(format!("candidate {}: {m}", describe(cand)))
                }
                LearnError::Data {
                    path,
                    line,
                    column,
                    message,
                } => LearnError::Data {
                    path: path.clone(),
                    line: *line,
                    column: column.clone(),
                    message: format!("candidate {}: {message}", describe(cand)),
                },
                other @ (LearnError::Io { .. }
                | LearnError::Package { .. }
                | LearnError::Core(_)) => {
                    LearnError::Param(format!("candidate {}: {other}", describe(cand)))
                }
            });
        }
        if let Some(fold) = folds.iter().position(|v| v.is_nan()) {
            return Err(LearnError::data(
                &spec.train.data,
                format!(
                    "{metric} is undefined on fold {} (it holds a single class); use fewer --folds or another --metric",
                    fold + 1
                ),
            ));
        }
        let mean = folds.iter().sum::<f64>() / folds.len() as f64;
        let std =
            (folds.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / folds.len() as f64).sqrt();
        ranking.push(Scored {
            params: cand.clone(),
            mean,
            std,
            folds,
        });
    }
    ranking.sort_by(|a, b| {
        let ord = a.mean.total_cmp(&b.mean);
        let ord = if higher { ord.reverse() } else { ord };
        // NaN scores (a metric undefined on some fold) sort last.
        a.mean.is_nan().cmp(&b.mean.is_nan()).then(ord)
    });
    let mut final_spec = spec.train.clone();
    for (k, v) in &ranking[0].params {
        apply(&mut final_spec.params, k, v)?;
    }
    let trained = train::train(&final_spec, &mut |_| {})?;
    Ok(Tuned {
        metric,
        higher_is_better: higher,
        ranking,
        trained,
    })
}

fn score_fold(
    data: &Dataset,
    params: &TrainParams,
    fit_rows: &[usize],
    held: &[usize],
    metric: &str,
) -> Result<f64> {
    let strata: Option<Vec<u32>> = data
        .target
        .strata()
        .map(|s| fit_rows.iter().map(|r| s[*r]).collect());
    let inner = split::split(
        fit_rows,
        strata.as_deref(),
        0.0,
        params.effective_validation_size(),
        params.seed,
    );
    let features = pipeline::fit(&data.frame, &data.feature_columns, &inner.train)?;
    let (x, _) = pipeline::transform(&features, &data.frame, &inner.train)?;
    let (xv, _) = pipeline::transform(&features, &data.frame, &inner.validation)?;
    // Early stopping watches the inner validation rows; the fold's held-out rows stay unseen.
    let validation =
        (!inner.validation.is_empty()).then_some((xv.view(), inner.validation.as_slice()));
    let (network, _) = fit_estimator(
        params,
        &data.target,
        x.view(),
        &inner.train,
        validation,
        &mut |_| {},
    )?;
    let (xh, _) = pipeline::transform(&features, &data.frame, held)?;
    let out = network.forward(xh.view());
    let report = train::evaluate(out.view(), &data.target, held, params.threshold);
    report
        .get(metric)
        .ok_or_else(|| LearnError::Param(format!("metric `{metric}` does not apply to this task")))
}

/// A report of the task's kind on two made-up rows, to learn which metrics the task has.
fn probe_report(task: Task) -> metrics::Report {
    match task {
        Task::BinaryClassification => {
            metrics::Report::Binary(metrics::binary(&[true, false], &[0.9, 0.1], 0.5))
        }
        Task::MulticlassClassification => {
            let proba = ndarray::array![[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]];
            let classes = ["a".to_string(), "b".to_string(), "c".to_string()];
            metrics::Report::Multiclass(metrics::multiclass(&[0, 1, 2], proba.view(), &classes))
        }
        Task::Regression => {
            metrics::Report::Regression(metrics::regression(&[1.0, 2.0], &[1.0, 2.0]))
        }
    }
}

/// `lr=0.01 hidden=32x16`.
pub fn describe(c: &Candidate) -> String {
    c.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_parse_and_expand() {
        let axes = parse_grid("lr=0.01,0.001; hidden=16,32x16,none").unwrap();
        let c = candidates(&axes, Search::Grid, 1).unwrap();
        assert_eq!(c.len(), 6);
        assert_eq!(describe(&c[1]), "lr=0.01 hidden=32x16");
        let r = candidates(&axes, Search::Random { trials: 4 }, 1).unwrap();
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|x| c.contains(x)));
        assert_eq!(parse_hidden("32x16").unwrap(), vec![32, 16]);
        assert!(parse_hidden("").unwrap().is_empty());
    }

    #[test]
    fn bad_grids_say_what_is_wrong() {
        assert!(parse_grid("").unwrap_err().to_string().contains("empty"));
        assert!(
            parse_grid("speed=1")
                .unwrap_err()
                .to_string()
                .contains("not one of")
        );
        assert!(
            parse_grid("lr=fast")
                .unwrap_err()
                .to_string()
                .contains("`fast` is not a valid value for `lr`")
        );
        assert!(parse_grid("lr").unwrap_err().to_string().contains("KEY=V1"));
        let axes = parse_grid("lr=1e-4..1e-1").unwrap();
        assert!(
            candidates(&axes, Search::Grid, 1)
                .unwrap_err()
                .to_string()
                .contains("--search random")
        );
        let r = candidates(&axes, Search::Random { trials: 5 }, 1).unwrap();
        for c in r {
            let v: f64 = c[0].1.parse().unwrap();
            assert!((1e-4..=1e-1).contains(&v));
        }
    }
}
