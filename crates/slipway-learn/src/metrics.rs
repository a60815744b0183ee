//! Evaluation metrics for binary, multiclass and regression models.
//!
//! Every metric is defined as in scikit-learn (checked against version 1.9.1 by
//! `tests/metrics_fixtures.rs`, whose reference values come from
//! `tests/fixtures/make_metrics_fixtures.py`):
//!
//! * precision, recall and F1 use `zero_division=0`: a ratio whose denominator is
//!   zero is 0;
//! * `roc_auc` is `roc_auc_score` (ties count one half, Mann–Whitney style),
//!   `pr_auc` is `average_precision_score` (a step-wise sum, ties grouped by
//!   threshold), `ks` is the two-sample Kolmogorov–Smirnov statistic of the
//!   positives' scores against the negatives' (`max |TPR - FPR|`), and
//!   `gini = 2 * roc_auc - 1`; the four share one sort of the scores, so they cost
//!   `O(n log n)`;
//! * `log_loss` clips probabilities to `[eps, 1 - eps]` with `eps = f64::EPSILON`
//!   and, like scikit-learn ≥ 1.5, does not renormalise multiclass rows;
//! * `r2` follows `r2_score(force_finite=True)`: with a constant target it is 1.0
//!   for perfect predictions and 0.0 otherwise, and it is NaN with fewer than two
//!   rows.
//!
//! A metric that is undefined for the data is `f64::NAN` rather than an error:
//! `roc_auc`, `ks` and `gini` when `y` holds a single class, `pr_auc` when `y` has
//! no positive (scikit-learn returns 0.0 there, with a warning), `roc_auc_ovr` when
//! a class never occurs in `y`, and every mean over rows when there are no rows.
//! Note that `serde_json` serialises NaN as `null`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use ndarray::ArrayView2;
use rayon::slice::ParallelSliceMut;
use serde::Serialize;

/// Inputs at least this long are sorted on the rayon thread pool.
const PARALLEL_SORT_MIN: usize = 1 << 15;

/// Binary confusion counts at a decision threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Positives predicted positive.
    pub tp: u64,
    /// Negatives predicted positive.
    pub fp: u64,
    /// Negatives predicted negative.
    pub tn: u64,
    /// Positives predicted negative (serialised as `"fn"`).
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// Metrics of a binary classifier, from [`binary`].
#[derive(Debug, Clone, Serialize)]
pub struct BinaryReport {
    /// Number of rows.
    pub n: u64,
    /// Number of rows whose true class is positive.
    pub positives: u64,
    /// Decision threshold: a row is predicted positive when `p >= threshold`.
    pub threshold: f64,
    /// Share of rows whose predicted label is the true one.
    pub accuracy: f64,
    /// `tp / (tp + fp)`, 0 when nothing is predicted positive.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when there is no positive.
    pub recall: f64,
    /// `2 tp / (2 tp + fp + fn)`, 0 when that denominator is 0.
    pub f1: f64,
    /// Area under the ROC curve (sklearn `roc_auc_score`); NaN with a single class.
    pub roc_auc: f64,
    /// Average precision (sklearn `average_precision_score`); NaN with no positive.
    pub pr_auc: f64,
    /// Mean cross-entropy (sklearn `log_loss`), probabilities clipped to `[eps, 1 - eps]`.
    pub log_loss: f64,
    /// Mean squared error of the probabilities (sklearn `brier_score_loss`).
    pub brier: f64,
    /// Kolmogorov–Smirnov statistic, `max |TPR - FPR|`; NaN with a single class.
    pub ks: f64,
    /// `2 * roc_auc - 1`.
    pub gini: f64,
    /// Confusion counts at `threshold`.
    pub confusion: Confusion,
    /// Points `(FPR, TPR)` of the ROC curve, at most 256 of them, for plots.
    #[serde(skip)]
    pub roc: Vec<(f64, f64)>,
}

/// Metrics of a binary classifier.
///
/// `y[i]` is true when row `i` belongs to the positive class and `p[i]` is the
/// predicted probability of the positive class; the predicted label is
/// `p[i] >= threshold`. Scores should be finite (scikit-learn rejects NaN); a NaN
/// score does not panic but makes `log_loss` and `brier` NaN.
///
/// # Panics
///
/// If `y` and `p` have different lengths.
pub fn binary(y: &[bool], p: &[f64], threshold: f64) -> BinaryReport {
    assert_eq!(
        y.len(),
        p.len(),
        "metrics::binary: {} labels but {} probabilities",
        y.len(),
        p.len()
    );
    let mut confusion = Confusion {
        tp: 0,
        fp: 0,
        tn: 0,
        fn_: 0,
    };
    let mut log_loss = Sum::default();
    let mut brier = Sum::default();
    for (&yi, &pi) in y.iter().zip(p) {
        match (yi, pi >= threshold) {
            (true, true) => confusion.tp += 1,
            (true, false) => confusion.fn_ += 1,
            (false, true) => confusion.fp += 1,
            (false, false) => confusion.tn += 1,
        }
        // As sklearn: the probability of the true class, clipped, then -ln.
        let p_true = if yi { pi } else { 1.0 - pi };
        log_loss.add(-clip_probability(p_true).ln());
        let err = if yi { 1.0 - pi } else { pi };
        brier.add(err * err);
    }
    let n = y.len() as u64;
    let Confusion { tp, fp, tn, fn_ } = confusion;
    let ranking = rank_metrics(p.iter().copied().zip(y.iter().copied()).collect());
    BinaryReport {
        n,
        positives: tp + fn_,
        threshold,
        accuracy: (tp + tn) as f64 / n as f64,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        f1: ratio(2 * tp, 2 * tp + fp + fn_),
        roc_auc: ranking.roc_auc,
        pr_auc: ranking.pr_auc,
        log_loss: log_loss.value() / n as f64,
        brier: brier.value() / n as f64,
        ks: ranking.ks,
        gini: 2.0 * ranking.roc_auc - 1.0,
        confusion,
        roc: roc_curve(y, p, 256),
    }
}

/// The ROC curve as `(FPR, TPR)` points, one per distinct score (highest first), thinned to at
/// most `max_points`; empty when `y` has a single class.
pub fn roc_curve(y: &[bool], p: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let positives = y.iter().filter(|v| **v).count();
    let negatives = y.len() - positives;
    if positives == 0 || negatives == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_unstable_by(|a, b| p[*b].total_cmp(&p[*a]));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    for (k, i) in order.iter().enumerate() {
        if y[*i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|j| p[*j] != p[*i]);
        if last_of_tie {
            points.push((fp as f64 / negatives as f64, tp as f64 / positives as f64));
        }
    }
    if points.len() > max_points.max(2) {
        let step = points.len() as f64 / (max_points.max(2) - 1) as f64;
        let last = *points.last().expect("non-empty");
        points = (0..max_points.max(2) - 1)
            .map(|i| points[(i as f64 * step) as usize])
            .collect();
        points.push(last);
    }
    points
}

/// Precision, recall and F1 of one class of a multiclass model.
#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    /// The class's name.
    pub class: String,
    /// Share of the rows predicted as this class that belong to it (0 if none is).
    pub precision: f64,
    /// Share of the rows of this class predicted as it (0 if it has no row).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when undefined).
    pub f1: f64,
    /// Number of rows whose true class is this one.
    pub support: u64,
}

/// Metrics of a multiclass classifier, from [`multiclass`].
#[derive(Debug, Clone, Serialize)]
pub struct MulticlassReport {
    /// Number of rows.
    pub n: u64,
    /// Share of rows whose predicted class is the true one.
    pub accuracy: f64,
    /// Unweighted mean of the per-class precisions, over every class.
    pub macro_precision: f64,
    /// Unweighted mean of the per-class recalls, over every class.
    pub macro_recall: f64,
    /// Unweighted mean of the per-class F1 scores, over every class.
    pub macro_f1: f64,
    /// Mean of the per-class F1 scores weighted by support.
    pub weighted_f1: f64,
    /// Mean cross-entropy (sklearn `log_loss`), probabilities clipped to `[eps, 1 - eps]`.
    pub log_loss: f64,
    /// Macro average of the one-vs-rest ROC AUCs; NaN if a class never occurs in `y`.
    pub roc_auc_ovr: f64,
    /// Per-class metrics, in `classes` order.
    pub per_class: Vec<ClassReport>,
    /// Confusion matrix: rows are true classes, columns predicted classes.
    pub confusion: Vec<Vec<u64>>,
}

/// Metrics of a multiclass classifier.
///
/// `y[i]` is the index in `classes` of row `i`'s true class and row `i` of
/// `proba` holds its predicted probabilities, one column per class in `classes`
/// order. The predicted class is the column of the row's largest probability,
/// the first one on ties (NaN entries are never the maximum).
///
/// # Panics
///
/// If `y.len() != proba.nrows()`, `proba.ncols() != classes.len()`, or a label in
/// `y` is not below `classes.len()`.
pub fn multiclass(y: &[usize], proba: ArrayView2<'_, f64>, classes: &[String]) -> MulticlassReport {
    assert_eq!(
        y.len(),
        proba.nrows(),
        "metrics::multiclass: {} labels but {} probability rows",
        y.len(),
        proba.nrows()
    );
    assert_eq!(
        proba.ncols(),
        classes.len(),
        "metrics::multiclass: {} probability columns but {} classes",
        proba.ncols(),
        classes.len()
    );
    let k = classes.len();
    let mut confusion = vec![vec![0_u64; k]; k];
    let mut log_loss = Sum::default();
    for (row, &truth) in proba.rows().into_iter().zip(y) {
        assert!(
            truth < k,
            "metrics::multiclass: label {truth} is out of range for {k} classes"
        );
        let mut predicted = 0;
        for (j, &v) in row.iter().enumerate() {
            if v > row[predicted] || (row[predicted].is_nan() && !v.is_nan()) {
                predicted = j;
            }
        }
        confusion[truth][predicted] += 1;
        log_loss.add(-clip_probability(row[truth]).ln());
    }
    let n = y.len() as u64;

    let mut per_class = Vec::with_capacity(k);
    let mut correct = 0;
    let mut weighted_f1 = Sum::default();
    for (c, name) in classes.iter().enumerate() {
        let tp = confusion[c][c];
        let support: u64 = confusion[c].iter().sum();
        let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
        let f1 = ratio(2 * tp, support + predicted);
        correct += tp;
        weighted_f1.add(f1 * support as f64);
        per_class.push(ClassReport {
            class: name.clone(),
            precision: ratio(tp, predicted),
            recall: ratio(tp, support),
            f1,
            support,
        });
    }
    let macro_of = |field: fn(&ClassReport) -> f64| {
        let mut sum = Sum::default();
        per_class.iter().for_each(|c| sum.add(field(c)));
        sum.value() / k as f64
    };
    let roc_auc_ovr = {
        let mut sum = Sum::default();
        for c in 0..k {
            let column = proba.column(c);
            let pairs = column.iter().zip(y).map(|(&s, &t)| (s, t == c)).collect();
            sum.add(rank_metrics(pairs).roc_auc);
        }
        sum.value() / k as f64
    };
    MulticlassReport {
        n,
        accuracy: correct as f64 / n as f64,
        macro_precision: macro_of(|c| c.precision),
        macro_recall: macro_of(|c| c.recall),
        macro_f1: macro_of(|c| c.f1),
        weighted_f1: weighted_f1.value() / n as f64,
        log_loss: log_loss.value() / n as f64,
        roc_auc_ovr,
        per_class,
        confusion,
    }
}

/// Metrics of a regression model, from [`regression`].
#[derive(Debug, Clone, Serialize)]
pub struct RegressionReport {
    /// Number of rows.
    pub n: u64,
    /// Mean squared error.
    pub mse: f64,
    /// Square root of `mse`.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination (sklearn `r2_score`, `force_finite=True`).
    pub r2: f64,
}

/// Metrics of a regression model: `y` holds the true values, `pred` the predictions.
///
/// # Panics
///
/// If `y` and `pred` have different lengths.
pub fn regression(y: &[f64], pred: &[f64]) -> RegressionReport {
    assert_eq!(
        y.len(),
        pred.len(),
        "metrics::regression: {} targets but {} predictions",
        y.len(),
        pred.len()
    );
    let n = y.len();
    let mut squared = Sum::default();
    let mut absolute = Sum::default();
    let mut total = Sum::default();
    for (&t, &p) in y.iter().zip(pred) {
        let err = t - p;
        squared.add(err * err);
        absolute.add(err.abs());
        total.add(t);
    }
    let mse = squared.value() / n as f64;
    let r2 = if n < 2 {
        f64::NAN
    } else {
        let residual = squared.value();
        // A constant target has zero variance exactly, whatever rounding the
        // mean picks up.
        let constant = y.iter().all(|&t| t == y[0]);
        let variance = if constant {
            0.0
        } else {
            let mean = total.value() / n as f64;
            let mut sum = Sum::default();
            y.iter().for_each(|&t| sum.add((t - mean) * (t - mean)));
            sum.value()
        };
        if residual == 0.0 {
            1.0
        } else if variance == 0.0 {
            0.0
        } else {
            1.0 - residual / variance
        }
    };
    RegressionReport {
        n: n as u64,
        mse,
        rmse: mse.sqrt(),
        mae: absolute.value() / n as f64,
        r2,
    }
}

/// The metrics of one evaluation, whatever the task.
///
/// Serialised with a `"task"` field (`"binary"`, `"multiclass"` or
/// `"regression"`) beside the report's own fields.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Report {
    /// A binary classifier's report.
    Binary(BinaryReport),
    /// A multiclass classifier's report.
    Multiclass(MulticlassReport),
    /// A regression model's report.
    Regression(RegressionReport),
}

impl Report {
    /// The report's real-valued metrics by name: every `f64` field of the variant
    /// except `threshold` (so no counts such as `n`, `tp` or `fn`, and no
    /// per-class values). Every name is in [`METRIC_NAMES`].
    pub fn scalars(&self) -> BTreeMap<String, f64> {
        self.pairs()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    /// One metric of [`Report::scalars`] by name; `None` if this report has no
    /// such metric.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.pairs()
            .into_iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    fn pairs(&self) -> Vec<(&'static str, f64)> {
        match self {
            Report::Binary(r) => vec![
                ("accuracy", r.accuracy),
                ("precision", r.precision),
                ("recall", r.recall),
                ("f1", r.f1),
                ("roc_auc", r.roc_auc),
                ("pr_auc", r.pr_auc),
                ("log_loss", r.log_loss),
                ("brier", r.brier),
                ("ks", r.ks),
                ("gini", r.gini),
            ],
            Report::Multiclass(r) => vec![
                ("accuracy", r.accuracy),
                ("macro_precision", r.macro_precision),
                ("macro_recall", r.macro_recall),
                ("macro_f1", r.macro_f1),
                ("weighted_f1", r.weighted_f1),
                ("log_loss", r.log_loss),
                ("roc_auc_ovr", r.roc_auc_ovr),
            ],
            Report::Regression(r) => vec![
                ("mse", r.mse),
                ("rmse", r.rmse),
                ("mae", r.mae),
                ("r2", r.r2),
            ],
        }
    }
}

/// Every metric name [`Report::scalars`] can return, for any task, sorted.
pub const METRIC_NAMES: &[&str] = &[
    "accuracy",
    "brier",
    "f1",
    "gini",
    "ks",
    "log_loss",
    "macro_f1",
    "macro_precision",
    "macro_recall",
    "mae",
    "mse",
    "pr_auc",
    "precision",
    "r2",
    "recall",
    "rmse",
    "roc_auc",
    "roc_auc_ovr",
    "weighted_f1",
];

/// Whether a larger value of the metric is better: false for the losses and
/// errors (`log_loss`, `brier`, `mse`, `rmse`, `mae`), true for the other names
/// of [`METRIC_NAMES`], `None` for an unknown name.
pub fn higher_is_better(name: &str) -> Option<bool> {
    match name {
        "log_loss" | "brier" | "mse" | "rmse" | "mae" => Some(false),
        "accuracy" | "f1" | "gini" | "ks" | "macro_f1" | "macro_precision" | "macro_recall"
        | "pr_auc" | "precision" | "r2" | "recall" | "roc_auc" | "roc_auc_ovr" | "weighted_f1" => {
            Some(true)
        }
        _ => None,
    }
}

/// `num / den`, or 0 when `den` is 0 (sklearn's `zero_division=0`).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Clips a probability to `[eps, 1 - eps]` as sklearn's `log_loss` does.
fn clip_probability(p: f64) -> f64 {
    p.clamp(f64::EPSILON, 1.0 - f64::EPSILON)
}

/// Neumaier-compensated summation, so means over a million rows stay accurate.
#[derive(Default)]
struct Sum {
    sum: f64,
    compensation: f64,
}

impl Sum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(&self) -> f64 {
        let total = self.sum + self.compensation;
        // Infinities and NaN make the compensation NaN; keep the plain sum then.
        if total.is_finite() { total } else { self.sum }
    }
}

/// The metrics that depend only on the ranking of the scores.
struct RankMetrics {
    roc_auc: f64,
    pr_auc: f64,
    ks: f64,
}

/// ROC AUC, average precision and KS from `(score, is_positive)` pairs, with one
/// sort: the pairs are walked from the highest score down, one group of equal
/// scores (one threshold) at a time.
fn rank_metrics(mut pairs: Vec<(f64, bool)>) -> RankMetrics {
    let descending = |a: &(f64, bool), b: &(f64, bool)| -> Ordering { b.0.total_cmp(&a.0) };
    if pairs.len() >= PARALLEL_SORT_MIN {
        pairs.par_sort_unstable_by(descending);
    } else {
        pairs.sort_unstable_by(descending);
    }
    let positives = pairs.iter().filter(|&&(_, positive)| positive).count() as u64;
    let negatives = pairs.len() as u64 - positives;

    let (mut tp, mut fp) = (0_u64, 0_u64);
    // Twice the Mann–Whitney U statistic of the positives, in integers so the AUC
    // is exact: each (positive, negative) pair ranked correctly counts 2, each
    // tied pair 1.
    let mut twice_u: u128 = 0;
    let mut average_precision = Sum::default();
    let mut ks: f64 = 0.0;
    let mut start = 0;
    while start < pairs.len() {
        // One threshold: the run of equal scores from `start`. `==` rather than
        // `total_cmp` so that -0.0 and 0.0 share a threshold (a NaN is alone).
        let score = pairs[start].0;
        let end = start
            + 1
            + pairs[start + 1..]
                .iter()
                .take_while(|&&(s, _)| s == score)
                .count();
        let group_pos = pairs[start..end].iter().filter(|&&(_, pos)| pos).count() as u64;
        let group_neg = (end - start) as u64 - group_pos;
        start = end;
        twice_u += u128::from(group_neg) * u128::from(2 * tp + group_pos);
        tp += group_pos;
        fp += group_neg;
        if group_pos > 0 {
            let recall_step = group_pos as f64 / positives as f64;
            let precision = tp as f64 / (tp + fp) as f64;
            average_precision.add(recall_step * precision);
        }
        if positives > 0 && negatives > 0 {
            let gap = (tp as f64 / positives as f64 - fp as f64 / negatives as f64).abs();
            ks = ks.max(gap);
        }
    }
    let both_classes = positives > 0 && negatives > 0;
    RankMetrics {
        roc_auc: if both_classes {
            twice_u as f64 / (2.0 * positives as f64 * negatives as f64)
        } else {
            f64::NAN
        },
        pr_auc: if positives > 0 {
            average_precision.value()
        } else {
            f64::NAN
        },
        ks: if both_classes { ks } else { f64::NAN },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol
    }

    /// O(n²) ROC AUC straight from the definition.
    fn naive_auc(y: &[bool], p: &[f64]) -> f64 {
        let mut num = 0.0;
        let mut den = 0.0;
        for (i, &yi) in y.iter().enumerate() {
            for (j, &yj) in y.iter().enumerate() {
                if yi && !yj {
                    den += 1.0;
                    num += match p[i].partial_cmp(&p[j]) {
                        Some(Ordering::Greater) => 1.0,
                        Some(Ordering::Equal) => 0.5,
                        Some(Ordering::Less) | None => 0.0,
                    };
                }
            }
        }
        if den == 0.0 { f64::NAN } else { num / den }
    }

    /// ROC AUC as the Mann–Whitney rank sum with average ranks, O(n log n).
    fn rank_sum_auc(y: &[bool], p: &[f64]) -> f64 {
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        let mut rank_sum = 0.0;
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j < order.len() && p[order[j]] == p[order[i]] {
                j += 1;
            }
            let average_rank = (i + 1 + j) as f64 / 2.0;
            rank_sum += average_rank * order[i..j].iter().filter(|&&k| y[k]).count() as f64;
            i = j;
        }
        let pos = y.iter().filter(|&&v| v).count() as f64;
        let neg = y.len() as f64 - pos;
        (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
    }

    /// Distinct thresholds, from the highest down.
    fn thresholds(p: &[f64]) -> Vec<f64> {
        let mut t = p.to_vec();
        t.sort_by(|a, b| b.total_cmp(a));
        t.dedup();
        t
    }

    fn counts_at(y: &[bool], p: &[f64], t: f64) -> (f64, f64) {
        let tp = y.iter().zip(p).filter(|&(&yi, &pi)| yi && pi >= t).count();
        let fp = y.iter().zip(p).filter(|&(&yi, &pi)| !yi && pi >= t).count();
        (tp as f64, fp as f64)
    }

    /// Average precision from the definition: sum over thresholds of ΔR · P.
    fn naive_ap(y: &[bool], p: &[f64]) -> f64 {
        let pos = y.iter().filter(|&&v| v).count() as f64;
        let mut prev_recall = 0.0;
        let mut ap = 0.0;
        for t in thresholds(p) {
            let (tp, fp) = counts_at(y, p, t);
            let recall = tp / pos;
            ap += (recall - prev_recall) * (tp / (tp + fp));
            prev_recall = recall;
        }
        ap
    }

    fn naive_ks(y: &[bool], p: &[f64]) -> f64 {
        let pos = y.iter().filter(|&&v| v).count() as f64;
        let neg = y.len() as f64 - pos;
        thresholds(p)
            .into_iter()
            .map(|t| {
                let (tp, fp) = counts_at(y, p, t);
                (tp / pos - fp / neg).abs()
            })
            .fold(0.0, f64::max)
    }

    /// Labels and scores on a grid of 21 values (k / 20), so that ties are common.
    fn labelled_scores() -> impl Strategy<Value = (Vec<bool>, Vec<u8>)> {
        prop::collection::vec((any::<bool>(), 0_u8..=20), 1..60)
            .prop_map(|rows| rows.into_iter().unzip())
    }

    fn grid(k: &[u8]) -> Vec<f64> {
        k.iter().map(|&k| f64::from(k) / 20.0).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn ranking_metrics_match_definitions((y, k) in labelled_scores()) {
            let p = grid(&k);
            let r = binary(&y, &p, 0.5);
            let has_pos = y.iter().any(|&v| v);
            let has_neg = y.iter().any(|&v| !v);
            prop_assert!(close(r.roc_auc, naive_auc(&y, &p), 1e-12));
            prop_assert_eq!(r.roc_auc.is_nan(), !(has_pos && has_neg));
            if has_pos && has_neg {
                prop_assert!((0.0..=1.0).contains(&r.roc_auc));
                prop_assert!((0.0..=1.0).contains(&r.ks));
                prop_assert!(close(r.ks, naive_ks(&y, &p), 1e-12));
            } else {
                prop_assert!(r.ks.is_nan());
            }
            if has_pos {
                prop_assert!(close(r.pr_auc, naive_ap(&y, &p), 1e-12));
                prop_assert!((0.0..=1.0).contains(&r.pr_auc));
            } else {
                prop_assert!(r.pr_auc.is_nan());
            }
            prop_assert!(close(r.gini, 2.0 * r.roc_auc - 1.0, 0.0));
        }

        #[test]
        fn ranking_metrics_invariant_to_monotone_transforms((y, k) in labelled_scores()) {
            let p = grid(&k);
            let q: Vec<f64> = k.iter().map(|&k| (f64::from(k) + 1.0).ln() * 3.0 - 7.0).collect();
            let a = binary(&y, &p, 0.5);
            let b = binary(&y, &q, 0.5);
            prop_assert!(close(a.roc_auc, b.roc_auc, 1e-12));
            prop_assert!(close(a.pr_auc, b.pr_auc, 1e-12));
            prop_assert!(close(a.ks, b.ks, 1e-12));
        }

        #[test]
        fn reversed_scores_flip_auc((y, k) in labelled_scores()) {
            let p = grid(&k);
            let flipped: Vec<f64> = p.iter().map(|&v| 1.0 - v).collect();
            let a = binary(&y, &p, 0.5);
            let b = binary(&y, &flipped, 0.5);
            prop_assert!(close(b.roc_auc, 1.0 - a.roc_auc, 1e-12));
            prop_assert!(close(b.gini, -a.gini, 1e-12));
            prop_assert!(close(a.ks, b.ks, 1e-12));
        }

        #[test]
        fn confusion_is_consistent((y, k) in labelled_scores(), t in 0_u8..=20) {
            let p = grid(&k);
            let threshold = f64::from(t) / 20.0;
            let r = binary(&y, &p, threshold);
            let c = r.confusion;
            prop_assert_eq!(c.tp + c.fp + c.tn + c.fn_, y.len() as u64);
            prop_assert_eq!(r.n, y.len() as u64);
            prop_assert_eq!(r.positives, c.tp + c.fn_);
            let predicted = p.iter().filter(|&&v| v >= threshold).count() as u64;
            prop_assert_eq!(c.tp + c.fp, predicted);
            for v in [r.accuracy, r.precision, r.recall, r.f1, r.brier] {
                prop_assert!((0.0..=1.0).contains(&v));
            }
            prop_assert!(r.log_loss >= 0.0);
        }

        #[test]
        fn regression_basics(rows in prop::collection::vec((-1e3_f64..1e3, -1e3_f64..1e3), 2..50)) {
            let (y, pred): (Vec<f64>, Vec<f64>) = rows.into_iter().unzip();
            let r = regression(&y, &pred);
            prop_assert!(r.mse >= 0.0 && r.mae >= 0.0);
            prop_assert!(close(r.rmse * r.rmse, r.mse, 1e-9 * r.mse.max(1.0)));
            prop_assert!(r.mae <= r.rmse * (1.0 + 1e-12));
            prop_assert!(r.r2 <= 1.0);
            let perfect = regression(&y, &y);
            prop_assert_eq!(perfect.mse, 0.0);
            prop_assert_eq!(perfect.r2, 1.0);
        }

        #[test]
        fn multiclass_consistency(rows in prop::collection::vec((0_usize..3, prop::collection::vec(0_u8..5, 3)), 1..60)) {
            let classes: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
            let y: Vec<usize> = rows.iter().map(|(t, _)| *t).collect();
            let flat: Vec<f64> = rows
                .iter()
                .flat_map(|(_, w)| {
                    let total = w.iter().map(|&v| f64::from(v) + 1.0).sum::<f64>();
                    w.iter().map(move |&v| (f64::from(v) + 1.0) / total)
                })
                .collect();
            let proba = Array2::from_shape_vec((y.len(), 3), flat).unwrap();
            let r = multiclass(&y, proba.view(), &classes);
            let total: u64 = r.confusion.iter().flatten().sum();
            prop_assert_eq!(total, y.len() as u64);
            let trace: u64 = (0..3).map(|c| r.confusion[c][c]).sum();
            prop_assert!(close(r.accuracy, trace as f64 / y.len() as f64, 0.0));
            for (c, class) in r.per_class.iter().enumerate() {
                prop_assert_eq!(class.support, y.iter().filter(|&&t| t == c).count() as u64);
                prop_assert_eq!(class.support, r.confusion[c].iter().sum::<u64>());
            }
            for v in [r.macro_precision, r.macro_recall, r.macro_f1, r.weighted_f1] {
                prop_assert!((0.0..=1.0).contains(&v));
            }
            let all_present = (0..3).all(|c| y.contains(&c));
            prop_assert_eq!(r.roc_auc_ovr.is_nan(), !all_present);
            if all_present {
                prop_assert!((0.0..=1.0).contains(&r.roc_auc_ovr));
            }
        }

        #[test]
        fn two_class_ovr_auc_equals_binary_auc((y, k) in labelled_scores()) {
            let p = grid(&k);
            let labels: Vec<usize> = y.iter().map(|&v| usize::from(v)).collect();
            let proba = Array2::from_shape_fn((y.len(), 2), |(i, j)| if j == 1 { p[i] } else { 1.0 - p[i] });
            let classes = vec!["neg".to_owned(), "pos".to_owned()];
            let m = multiclass(&labels, proba.view(), &classes);
            let b = binary(&y, &p, 0.5);
            prop_assert!(close(m.roc_auc_ovr, b.roc_auc, 1e-12));
            prop_assert!(close(m.log_loss, b.log_loss, 1e-12));
        }
    }

    #[test]
    fn sklearn_documentation_examples() {
        // average_precision_score / roc_auc_score docstring example.
        let r = binary(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8], 0.5);
        assert!(close(r.pr_auc, 0.8333333333333333, 1e-15));
        assert!(close(r.roc_auc, 0.75, 1e-15));
        assert!(close(r.gini, 0.5, 1e-15));
        assert!(close(r.ks, 0.5, 1e-15));
        // log_loss docstring example: classes (ham, spam).
        let y = [1, 0, 0, 1];
        let proba =
            Array2::from_shape_vec((4, 2), vec![0.1, 0.9, 0.9, 0.1, 0.8, 0.2, 0.35, 0.65]).unwrap();
        let classes = vec!["ham".to_owned(), "spam".to_owned()];
        let m = multiclass(&y, proba.view(), &classes);
        assert!(
            close(m.log_loss, 0.21616187468057912, 1e-15),
            "{}",
            m.log_loss
        );
    }

    #[test]
    fn log_loss_clips_certain_mistakes() {
        let r = binary(&[true, false], &[0.0, 1.0], 0.5);
        assert!(close(r.log_loss, -f64::EPSILON.ln(), 1e-12));
        let r = binary(&[true, false], &[1.0, 0.0], 0.5);
        assert!(close(r.log_loss, -(1.0 - f64::EPSILON).ln(), 1e-18));
        assert_eq!(r.brier, 0.0);
    }

    #[test]
    fn threshold_is_inclusive_and_ties_take_first_max() {
        let r = binary(&[true, false], &[0.5, 0.5], 0.5);
        assert_eq!(
            r.confusion,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 0,
                fn_: 0
            }
        );
        let proba = Array2::from_shape_vec((2, 3), vec![0.2, 0.4, 0.4, 0.3, 0.3, 0.3]).unwrap();
        let classes: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        let m = multiclass(&[1, 2], proba.view(), &classes);
        assert_eq!(
            m.confusion,
            vec![vec![0, 0, 0], vec![0, 1, 0], vec![1, 0, 0]]
        );
        assert_eq!(m.per_class[2].precision, 0.0);
        assert_eq!(m.per_class[0].recall, 0.0);
    }

    #[test]
    fn single_class_and_empty_inputs() {
        let r = binary(&[true, true, true], &[0.2, 0.9, 0.9], 0.5);
        assert!(r.roc_auc.is_nan() && r.ks.is_nan() && r.gini.is_nan());
        assert_eq!(r.pr_auc, 1.0);
        let r = binary(&[false, false], &[0.2, 0.9], 0.5);
        assert!(r.roc_auc.is_nan() && r.pr_auc.is_nan() && r.ks.is_nan());
        assert_eq!((r.precision, r.recall, r.f1), (0.0, 0.0, 0.0));

        let r = binary(&[], &[], 0.5);
        assert_eq!(r.n, 0);
        assert!(r.accuracy.is_nan() && r.log_loss.is_nan() && r.roc_auc.is_nan());
        let m = multiclass(
            &[],
            Array2::<f64>::zeros((0, 2)).view(),
            &["a".into(), "b".into()],
        );
        assert_eq!(m.n, 0);
        assert!(m.accuracy.is_nan() && m.roc_auc_ovr.is_nan());
        let g = regression(&[], &[]);
        assert!(g.mse.is_nan() && g.r2.is_nan());
        assert!(regression(&[1.0], &[2.0]).r2.is_nan());
    }

    #[test]
    fn r2_with_constant_target() {
        assert_eq!(regression(&[0.1, 0.1, 0.1], &[0.1, 0.1, 0.1]).r2, 1.0);
        assert_eq!(regression(&[0.1, 0.1, 0.1], &[0.1, 0.2, 0.1]).r2, 0.0);
        let r = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]);
        assert!(close(r.r2, 0.5, 1e-15));
    }

    #[test]
    fn large_input_uses_parallel_sort_and_agrees() {
        // Deterministic pseudo-random scores with many ties, past PARALLEL_SORT_MIN.
        let n = PARALLEL_SORT_MIN * 2 + 7;
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut y, mut p) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let positive = next() % 3 == 0;
            let noise = (next() % 1000) as f64 / 1000.0;
            y.push(positive);
            p.push(((noise + if positive { 0.3 } else { 0.0 }) * 100.0).round() / 130.0);
        }
        let r = binary(&y, &p, 0.5);
        assert!(close(r.roc_auc, rank_sum_auc(&y, &p), 1e-12));
        assert!(close(r.gini, 2.0 * r.roc_auc - 1.0, 0.0));
        // KS from the empirical CDFs, as scipy's ks_2samp computes it.
        let mut pos: Vec<f64> = y
            .iter()
            .zip(&p)
            .filter(|(t, _)| **t)
            .map(|(_, s)| *s)
            .collect();
        let mut neg: Vec<f64> = y
            .iter()
            .zip(&p)
            .filter(|(t, _)| !**t)
            .map(|(_, s)| *s)
            .collect();
        pos.sort_by(f64::total_cmp);
        neg.sort_by(f64::total_cmp);
        let cdf = |sorted: &[f64], x: f64| {
            sorted.partition_point(|&v| v <= x) as f64 / sorted.len() as f64
        };
        let ks = p
            .iter()
            .map(|&x| (cdf(&pos, x) - cdf(&neg, x)).abs())
            .fold(0.0, f64::max);
        assert!(close(r.ks, ks, 1e-12));
        assert!(r.roc_auc > 0.5 && r.roc_auc < 1.0);
    }

    #[test]
    fn report_scalars_and_names() {
        let b = Report::Binary(binary(&[true, false, true], &[0.8, 0.3, 0.4], 0.5));
        let m = Report::Multiclass(multiclass(
            &[0, 1],
            Array2::from_shape_vec((2, 2), vec![0.7, 0.3, 0.4, 0.6])
                .unwrap()
                .view(),
            &["a".into(), "b".into()],
        ));
        let g = Report::Regression(regression(&[1.0, 2.0], &[1.5, 2.0]));
        let mut seen = std::collections::BTreeSet::new();
        for report in [&b, &m, &g] {
            let scalars = report.scalars();
            for (name, value) in &scalars {
                assert!(
                    METRIC_NAMES.contains(&name.as_str()),
                    "{name} not in METRIC_NAMES"
                );
                assert!(close(report.get(name).unwrap(), *value, 0.0));
                seen.insert(name.clone());
            }
            assert_eq!(report.get("threshold"), None);
            assert_eq!(report.get("tp"), None);
            assert_eq!(report.get("n"), None);
        }
        let all: std::collections::BTreeSet<String> =
            METRIC_NAMES.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(
            seen, all,
            "METRIC_NAMES must be exactly the union of scalars"
        );
        let mut sorted = METRIC_NAMES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, METRIC_NAMES);
        for name in METRIC_NAMES {
            assert!(higher_is_better(name).is_some(), "{name}");
        }
        for name in ["log_loss", "brier", "mse", "rmse", "mae"] {
            assert_eq!(higher_is_better(name), Some(false));
        }
        assert_eq!(higher_is_better("roc_auc"), Some(true));
        assert_eq!(higher_is_better("threshold"), None);
        assert_eq!(b.get("roc_auc"), Some(1.0));
        assert_eq!(g.get("roc_auc"), None);
    }

    #[test]
    fn serialization_shape() {
        let b = Report::Binary(binary(&[true, false], &[0.8, 0.3], 0.5));
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["task"], "binary");
        assert_eq!(v["confusion"]["fn"], 0);
        assert_eq!(v["confusion"]["tp"], 1);
        assert_eq!(v["threshold"], 0.5);
        let g =
            serde_json::to_value(Report::Regression(regression(&[1.0, 2.0], &[1.0, 2.0]))).unwrap();
        assert_eq!(g["task"], "regression");
        assert_eq!(g["r2"], 1.0);
    }
}
