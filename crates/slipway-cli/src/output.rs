//! What the commands print: tables and plots for people, JSON for pipelines, a progress bar
//! on a terminal.

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use slipway_learn::metrics::{BinaryReport, MulticlassReport, RegressionReport, Report};
use slipway_learn::mlp::EpochReport;
use slipway_learn::train::Trained;

/// Prints a JSON value on one line.
pub fn print_json(value: &Value) {
    println!("{value}");
}

/// A progress bar over epochs, drawn only on a terminal.
pub struct EpochBar {
    bar: Option<ProgressBar>,
}

impl EpochBar {
    pub fn new(enabled: bool, epochs: usize) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("epoch {pos:>4}/{len} [{bar:30}] {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        EpochBar { bar }
    }

    pub fn epoch(&self, e: &EpochReport) {
        if let Some(bar) = &self.bar {
            bar.set_position(e.epoch as u64);
            let val = e
                .val_loss
                .map_or(String::new(), |v| format!("  val loss {v:.4}"));
            bar.set_message(format!("train loss {:.4}{val}", e.train_loss));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A counting progress bar (tuning fits), drawn only on a terminal.
pub fn count_bar(enabled: bool, len: usize, what: &str) -> Option<ProgressBar> {
    (enabled && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{what} {{pos:>4}}/{{len}} [{{bar:30}}] {{elapsed}} ETA {{eta}}"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    })
}

/// A progress bar over the bytes of an input file, drawn only on a terminal.
pub fn bytes_bar(enabled: bool, len: u64) -> Option<ProgressBar> {
    (enabled && len > 0 && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "scoring [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    })
}

/// Warnings about the data, on stderr.
pub fn warnings(trained: &Trained) {
    let m = &trained.manifest;
    if trained.rows_dropped > 0 {
        eprintln!(
            "warning: dropped {} rows of {} whose target `{}` is missing",
            trained.rows_dropped, m.lineage.dataset, m.target.name
        );
    }
    if trained.unseen_categories > 0 {
        eprintln!(
            "note: {} test cells held a category not seen in training; they were encoded as all zeros",
            trained.unseen_categories
        );
    }
    for w in slipway_learn::pipeline::feature_warnings(&m.features, m.lineage.split[0]) {
        eprintln!("warning: {w}");
    }
    if !trained.fit.converged {
        eprintln!(
            "warning: L-BFGS stopped after {} iterations before converging; raise --max-iter",
            trained.fit.iterations
        );
    }
}

/// The JSON `train` prints.
pub fn trained_json(trained: &Trained, dir: &Path) -> Value {
    let m = &trained.manifest;
    json!({
        "package": dir.display().to_string(),
        "name": m.name,
        "model": m.model.kind,
        "task": m.task,
        "metrics": m.metrics,
        "report": trained.report,
        "rows": {
            "read": m.lineage.rows + m.lineage.rows_dropped,
            "dropped_missing_target": m.lineage.rows_dropped,
            "train": m.lineage.split[0],
            "validation": m.lineage.split[1],
            "test": m.lineage.split[2],
        },
        "unseen_categories": trained.unseen_categories,
        "warnings": slipway_learn::pipeline::feature_warnings(&m.features, m.lineage.split[0]),
        "fit": {
            "seconds": trained.fit.fit_seconds,
            "epochs_run": trained.fit.epochs_run,
            "best_epoch": trained.fit.best_epoch,
            "stopped_early": trained.fit.stopped_early,
            "iterations": trained.fit.iterations,
            "converged": trained.fit.converged,
            "l2": trained.fit.l2,
            "parameters": trained.fit.n_params,
        },
        "dataset_sha256": m.lineage.dataset_sha256,
        "payload_sha256": m.payload.sha256,
    })
}

/// The text `train` prints.
pub fn trained_text(trained: &Trained, dir: &Path) -> String {
    let m = &trained.manifest;
    let f = &trained.fit;
    let inputs = m.model.layers.first().map_or(0, |l| l.inputs);
    let mut out = format!(
        "Trained {} ({}) on {}: {} rows → {} train / {} validation / {} test; {} columns → {} inputs\n",
        m.model.kind,
        m.task,
        m.lineage.dataset,
        m.lineage.rows,
        m.lineage.split[0],
        m.lineage.split[1],
        m.lineage.split[2],
        m.features.len(),
        inputs,
    );
    let how = match m.model.kind.as_str() {
        "mlp" => format!(
            "{} epochs{}, kept epoch {}",
            f.epochs_run,
            if f.stopped_early {
                " (stopped early)"
            } else {
                ""
            },
            f.best_epoch
        ),
        "logistic" => format!("L-BFGS, {} iterations", f.iterations),
        _ => "closed form".into(),
    };
    out.push_str(&format!(
        "Fit in {} ({how}); {} parameters\n\n",
        seconds(f.fit_seconds),
        f.n_params
    ));
    let on = match m.lineage.split {
        [_, _, test] if test > 0 => "held-out test rows",
        [_, validation, _] if validation > 0 => "validation rows (no test split)",
        _ => "the training rows (no test or validation split: expect optimism)",
    };
    out.push_str(&format!("Metrics on {on}:\n"));
    out.push_str(&report_text(
        &trained.report,
        m.target.positive_class.as_deref(),
    ));
    out.push_str(&format!(
        "\nPackage: {} (slipway.json + model.safetensors, sha256 {}…)\n",
        dir.display(),
        &m.payload.sha256[..12]
    ));
    out
}

/// A report as tables (and, for binary classifiers, an ROC curve).
pub fn report_text(report: &Report, positive: Option<&str>) -> String {
    match report {
        Report::Binary(b) => binary_text(b, positive.unwrap_or("positive")),
        Report::Multiclass(m) => multiclass_text(m),
        Report::Regression(r) => regression_text(r),
    }
}

fn binary_text(b: &BinaryReport, positive: &str) -> String {
    let rows = [
        ("ROC-AUC", b.roc_auc),
        ("Gini", b.gini),
        ("KS", b.ks),
        ("PR-AUC", b.pr_auc),
        ("log loss", b.log_loss),
        ("Brier", b.brier),
        ("accuracy", b.accuracy),
        ("precision", b.precision),
        ("recall", b.recall),
        ("F1", b.f1),
    ];
    let mut out = String::new();
    let plot = roc_plot(b);
    for (i, (name, v)) in rows.iter().enumerate() {
        let left = format!("  {name:<10} {v:>7.4}");
        match plot.get(i) {
            Some(line) => out.push_str(&format!("{left:<24}    {line}\n")),
            None => out.push_str(&format!("{left}\n")),
        }
    }
    for line in plot.iter().skip(rows.len()) {
        out.push_str(&format!("{:<24}    {line}\n", ""));
    }
    let c = &b.confusion;
    out.push_str(&format!(
        "\n  {} rows, {} positive (`{positive}`); confusion at threshold {}:\n",
        b.n, b.positives, b.threshold
    ));
    out.push_str(&format!(
        "  {:<16}{:>15}{:>15}\n",
        "", "predicted neg", "predicted pos"
    ));
    out.push_str(&format!(
        "  {:<16}{:>15}{:>15}\n",
        "actual negative", c.tn, c.fp
    ));
    out.push_str(&format!(
        "  {:<16}{:>15}{:>15}\n",
        "actual positive", c.fn_, c.tp
    ));
    out
}

/// A small ROC curve drawn in text, one line per element.
fn roc_plot(b: &BinaryReport) -> Vec<String> {
    let points = &b.roc;
    if points.is_empty() {
        return Vec::new();
    }
    const W: usize = 32;
    const H: usize = 10;
    let mut grid = vec![vec![' '; W + 1]; H + 1];
    for (i, row) in grid.iter_mut().enumerate() {
        // The diagonal of a random model.
        let x = ((H - i) as f64 / H as f64 * W as f64).round() as usize;
        row[x.min(W)] = '·';
    }
    for (fpr, tpr) in points {
        let x = (fpr * W as f64).round() as usize;
        let y = H - (tpr * H as f64).round() as usize;
        grid[y.min(H)][x.min(W)] = '█';
    }
    let mut lines = vec![format!("ROC (AUC {:.3})", b.roc_auc)];
    for (i, row) in grid.iter().enumerate() {
        let label = match i {
            0 => "1.0┤",
            x if x == H => "0.0┤",
            _ => "   │",
        };
        lines.push(format!("{label}{}", row.iter().collect::<String>()));
    }
    lines.push(format!("   └{}", "─".repeat(W + 1)));
    lines.push(format!("    0{:>w$}", "FPR 1", w = W));
    lines
}

fn multiclass_text(m: &MulticlassReport) -> String {
    let mut out = format!(
        "  accuracy {:.4}   macro F1 {:.4}   weighted F1 {:.4}   log loss {:.4}   ROC-AUC (OvR) {:.4}\n\n",
        m.accuracy, m.macro_f1, m.weighted_f1, m.log_loss, m.roc_auc_ovr
    );
    let width = m
        .per_class
        .iter()
        .map(|c| c.class.len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "  {:<width$}  precision  recall      F1  support\n",
        "class"
    ));
    for c in &m.per_class {
        out.push_str(&format!(
            "  {:<width$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}\n",
            c.class, c.precision, c.recall, c.f1, c.support
        ));
    }
    out.push_str("\n  confusion (rows: actual, columns: predicted)\n");
    out.push_str(&format!("  {:<width$}", ""));
    for c in &m.per_class {
        out.push_str(&format!(" {:>w$}", c.class, w = c.class.len().max(5)));
    }
    out.push('\n');
    for (c, row) in m.per_class.iter().zip(&m.confusion) {
        out.push_str(&format!("  {:<width$}", c.class));
        for (other, v) in m.per_class.iter().zip(row) {
            out.push_str(&format!(" {:>w$}", v, w = other.class.len().max(5)));
        }
        out.push('\n');
    }
    out
}

fn regression_text(r: &RegressionReport) -> String {
    format!(
        "  R²     {:>10.4}\n  RMSE   {:>10.4}\n  MAE    {:>10.4}\n  MSE    {:>10.4}\n  rows   {:>10}\n",
        r.r2, r.rmse, r.mae, r.mse, r.n
    )
}

/// A duration for people: `850 µs`, `12.3 ms`, `4.56 s`.
pub fn seconds(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}
