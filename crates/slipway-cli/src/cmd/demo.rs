//! `slipway demo`: the credit-risk model, end to end, on the bundled German credit data.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use slipway_learn::dataset::DatasetSpec;
use slipway_learn::package::{self, NativeModel};
use slipway_learn::predict::{PredictOptions, predict_csv};
use slipway_learn::train::{self, ModelKind, TrainParams, TrainSpec, Trained};

use slipway_registry::{Gate, Promotion, RegisterOptions, Registry};

use crate::cmd::registry::who;
use crate::output::{self, EpochBar};

/// The Statlog (German Credit Data) set, CC BY 4.0: Hofmann, H. (1994), UCI Machine Learning
/// Repository, https://doi.org/10.24432/C5NC77 (see data/README.md).
const GERMAN_CREDIT: &str = include_str!("../../../../data/german_credit.csv");

#[derive(Args)]
pub struct DemoArgs {
    /// Folder for the demo's data and packages.
    #[arg(long, default_value = "slipway-demo", value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run(args: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir).map_err(|e| io(&args.dir, e))?;
    let data = args.dir.join("german_credit.csv");
    std::fs::write(&data, GERMAN_CREDIT).map_err(|e| io(&data, e))?;
    println!(
        "Slipway demo: a credit-risk model on the Statlog German credit data (1,000 applicants,"
    );
    println!(
        "20 attributes, 30% bad risks; Hofmann 1994, UCI, CC BY 4.0). Positive class: `bad`.\n"
    );

    let dataset = DatasetSpec {
        target: "creditability".into(),
        positive_class: Some("bad".into()),
        ..DatasetSpec::default()
    };
    let mut results: Vec<(String, PathBuf, Trained)> = Vec::new();
    for (label, params) in [
        (
            "logistic",
            TrainParams {
                model: ModelKind::Logistic,
                ..TrainParams::default()
            },
        ),
        (
            "mlp",
            TrainParams {
                model: ModelKind::Mlp,
                hidden: vec![16],
                l2: Some(0.01),
                ..TrainParams::default()
            },
        ),
    ] {
        let spec = TrainSpec {
            data: data.clone(),
            test_data: None,
            dataset: dataset.clone(),
            params,
            name: "credit".into(),
        };
        let bar = EpochBar::new(spec.params.model == ModelKind::Mlp, spec.params.epochs);
        let trained = train::train(&spec, &mut |e| bar.epoch(e))?;
        bar.finish();
        let dir = args.dir.join(format!("credit-{label}"));
        let manifest = package::write(&dir, &trained.manifest, &trained.network)?;
        results.push((
            label.to_string(),
            dir,
            Trained {
                manifest,
                ..trained
            },
        ));
    }

    println!(
        "Held-out test set: {} applicants, the same split for both models (seed 42)\n",
        results[0].2.manifest.lineage.split[2]
    );
    println!(
        "  {:<10} {:>8} {:>7} {:>7} {:>9} {:>9} {:>10}",
        "model", "ROC-AUC", "Gini", "KS", "log loss", "accuracy", "fit"
    );
    for (label, _, t) in &results {
        let m = &t.manifest.metrics;
        let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
        println!(
            "  {:<10} {:>8.4} {:>7.4} {:>7.4} {:>9.4} {:>9.4} {:>8.1}ms",
            label,
            get("roc_auc"),
            get("gini"),
            get("ks"),
            get("log_loss"),
            get("accuracy"),
            t.fit.fit_seconds * 1e3
        );
    }
    let best = results
        .iter()
        .max_by(|a, b| {
            let auc = |t: &Trained| t.manifest.metrics.get("roc_auc").copied().unwrap_or(0.0);
            auc(&a.2).total_cmp(&auc(&b.2))
        })
        .expect("two models");
    println!(
        "\nThe {} model ranks applicants best. Its full report:\n",
        best.0
    );
    print!("{}", output::trained_text(&best.2, &best.1));

    // Register both, promote the better one through a gate, and serve scores from production.
    let registry_dir = args.dir.join("registry");
    let mut registry = Registry::open(&registry_dir)?;
    let mut best_version = 0;
    let mut registered = Vec::new();
    for (label, dir, _) in &results {
        let mut tags = std::collections::BTreeMap::new();
        tags.insert("estimator".to_string(), label.clone());
        let v = registry.register(
            dir,
            &RegisterOptions {
                name: "credit".into(),
                alias: Some("staging".into()),
                description: format!("{label} on the German credit data"),
                tags,
                by: who(),
            },
        )?;
        if *label == best.0 {
            best_version = v.version;
        }
        registered.push(format!("credit:{} ({label})", v.version));
    }
    let gate: Gate = "roc_auc>=0.70".parse()?;
    let (_, from) = registry.promote(&Promotion {
        model: "credit".into(),
        version: best_version,
        alias: "production".into(),
        gates: vec![gate],
        by: who(),
        reason: "demo: best held-out ROC-AUC".into(),
        ..Promotion::default()
    })?;
    println!(
        "\nRegistry {}: registered {}; promoted credit:{best_version} to @production (gate roc_auc >= 0.70 passed; it pointed at {} before).",
        registry_dir.display(),
        registered.join(" and "),
        from.map_or("nothing".into(), |v| format!("credit:{v}"))
    );
    let production = registry.resolve(&"credit@production".parse()?)?;
    let production_dir = registry.materialize(&production)?;

    // Score the first applicants with the package, as a bank's batch job would.
    let sample = args.dir.join("applicants.csv");
    let text: String = GERMAN_CREDIT
        .lines()
        .take(6)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&sample, text).map_err(|e| io(&sample, e))?;
    let scores = args.dir.join("scores.csv");
    let model = NativeModel::load(&production_dir)?;
    let file = std::fs::File::create(&scores).map_err(|e| io(&scores, e))?;
    let options = PredictOptions {
        output: scores.clone(),
        ..PredictOptions::default()
    };
    predict_csv(&model, &sample, file, &options)?;
    println!(
        "\nScores for the first five applicants from credit@production ({}):",
        scores.display()
    );
    for line in std::fs::read_to_string(&scores)
        .map_err(|e| io(&scores, e))?
        .lines()
    {
        println!("  {line}");
    }
    let reg = registry_dir.display();
    println!("\nNext:");
    println!("  export SLIPWAY_REGISTRY={reg}");
    println!("  slipway models show credit");
    println!(
        "  slipway eval --model credit@production --data {}",
        data.display()
    );
    println!(
        "  slipway predict --model credit@production --data {} --out {}",
        sample.display(),
        scores.display()
    );
    println!("  slipway models history credit                  # every alias move: who, when, why");
    println!(
        "  slipway tune --data {} --target creditability --positive-class bad --model mlp \\\n      --grid 'lr=0.01,0.001;hidden=16,32x16;l2=0.001,0.01' --folds 5 --out {}",
        data.display(),
        args.dir.join("credit-tuned").display()
    );
    Ok(())
}

/// An I/O error that names its path (exit code 74, or 66 when missing).
fn io(path: &std::path::Path, source: std::io::Error) -> slipway_learn::LearnError {
    slipway_learn::LearnError::Io {
        path: path.to_path_buf(),
        source,
    }
}
