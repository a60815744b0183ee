//! `slipway tune`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::json;
use slipway_learn::package;
use slipway_learn::train::Trained;
use slipway_learn::tune::{self, Search, TuneSpec, describe};

use crate::cmd::train::ModelOptions;
use crate::output;

#[derive(Clone, Copy, ValueEnum)]
pub enum SearchArg {
    /// Every combination of the grid.
    Grid,
    /// --trials combinations drawn at random; `lo..hi` ranges are sampled log-uniformly.
    Random,
}

#[derive(Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub model: ModelOptions,
    /// The search space: KEY=V1,V2;KEY=LO..HI. Keys: lr, batch_size, hidden (e.g. 16,32x16,none),
    /// l2, epochs, activation, optimizer, momentum, patience.
    #[arg(long, value_name = "GRID")]
    pub grid: String,
    /// How candidates are drawn from the grid.
    #[arg(long, value_enum, default_value = "grid")]
    pub search: SearchArg,
    /// Candidates for --search random.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Metric to pick by (default: roc_auc, accuracy or rmse by task).
    #[arg(long)]
    pub metric: Option<String>,
    /// Where to write the winner's package.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print one JSON object instead of tables; no progress bar.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: TuneArgs) -> Result<()> {
    let spec = TuneSpec {
        train: args.model.spec()?,
        axes: tune::parse_grid(&args.grid)?,
        search: match args.search {
            SearchArg::Grid => Search::Grid,
            SearchArg::Random => Search::Random {
                trials: args.trials.max(1),
            },
        },
        folds: args.folds,
        metric: args.metric.clone(),
    };
    let bar = std::sync::OnceLock::new();
    let tuned = tune::tune(
        &spec,
        &mut |jobs| {
            if let Some(b) = output::count_bar(!args.json, jobs, "fit") {
                let _ = bar.set(b);
            }
        },
        &|| {
            if let Some(b) = bar.get() {
                b.inc(1);
            }
        },
    )?;
    if let Some(b) = bar.get() {
        b.finish_and_clear();
    }
    let manifest = package::write(&args.out, &tuned.trained.manifest, &tuned.trained.network)?;
    let trained = Trained {
        manifest,
        ..tuned.trained.clone()
    };
    let best = &tuned.ranking[0];
    output::warnings(&trained);
    if args.json {
        output::print_json(&json!({
            "metric": tuned.metric,
            "folds": args.folds,
            "best": best.params.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "ranking": tuned.ranking,
            "test": output::trained_json(&trained, &args.out),
        }));
        return Ok(());
    }
    let metric = &tuned.metric;
    println!(
        "Cross-validated {metric} ({} folds, {} candidates), best first:",
        args.folds,
        tuned.ranking.len()
    );
    let width = tuned
        .ranking
        .iter()
        .map(|s| describe(&s.params).len())
        .max()
        .unwrap_or(10)
        .max(10);
    println!(
        "  {:>4}  {:<width$}  {:>9}  {:>8}",
        "rank", "candidate", "mean", "± std"
    );
    for (i, s) in tuned.ranking.iter().enumerate().take(15) {
        println!(
            "  {:>4}  {:<width$}  {:>9.4}  {:>8.4}",
            i + 1,
            describe(&s.params),
            s.mean,
            s.std
        );
    }
    if tuned.ranking.len() > 15 {
        println!("  … {} more (use --json for all)", tuned.ranking.len() - 15);
    }
    let why = match tuned.ranking.get(1) {
        Some(second) => {
            let gap = (best.mean - second.mean).abs();
            let word = if tuned.higher_is_better {
                "highest"
            } else {
                "lowest"
            };
            let verdict = if gap < best.std.max(second.std) {
                "within one standard deviation of the runner-up: the two are statistically close"
            } else {
                "clear of the runner-up by more than one standard deviation"
            };
            format!(
                "{} won with the {word} mean {metric} {:.4} ± {:.4}, {gap:.4} ahead of {} ({:.4}); {verdict}.",
                describe(&best.params),
                best.mean,
                best.std,
                describe(&second.params),
                second.mean
            )
        }
        None => format!("{} was the only candidate.", describe(&best.params)),
    };
    println!("\n{why}\nRetrained on the training split and tested on the held-out rows:\n");
    print!("{}", output::trained_text(&trained, &args.out));
    Ok(())
}
