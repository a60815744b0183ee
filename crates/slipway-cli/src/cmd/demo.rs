//! `slipway demo`: the credit-risk model, end to end, on the bundled German credit data.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use slipway_learn::dataset::DatasetSpec;
use slipway_learn::package::{self, NativeModel};
use slipway_learn::predict::{PredictOptions, predict_csv};
use slipway_learn::train::{self, InputLayout, ModelKind, TrainParams, TrainSpec, Trained};

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
            input: InputLayout::Columns,
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
        let done = registry.register(
            dir,
            &RegisterOptions {
                name: "credit".into(),
                alias: Some("staging".into()),
                description: format!("{label} on the German credit data"),
                tags,
                by: who(),
            },
        )?;
        let v = done.record;
        if *label == best.0 {
            best_version = v.version;
        }
        registered.push(format!(
            "credit:{} ({label}{})",
            v.version,
            if done.reused {
                ", already there: the same package"
            } else {
                ""
            }
        ));
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
    let moved = match from {
        Some(v) if v == best_version => {
            format!("@production already points at credit:{v} (gate roc_auc >= 0.70 passed)")
        }
        Some(v) => format!(
            "promoted credit:{best_version} to @production (gate roc_auc >= 0.70 passed; it pointed at credit:{v} before)"
        ),
        None => format!(
            "promoted credit:{best_version} to @production (gate roc_auc >= 0.70 passed; it pointed at nothing before)"
        ),
    };
    println!(
        "\nRegistry {}: registered {}; {moved}.",
        registry_dir.display(),
        registered.join(" and "),
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
    // Serve credit@production over the Open Inference Protocol and ask it, over HTTP, about
    // the first applicant, as the bank's core system would.
    let record = first_record()?;
    let (addr, answer) = serve_and_ask(&production_dir, &production.version.to_string(), &record)?;
    println!(
        "\nServed credit@production (credit:{}) on http://{addr} and asked it over HTTP:",
        production.version
    );
    println!("  POST /v1/models/credit:predict {{\"instances\": [<applicant 1>]}}");
    println!("  → {answer}");
    let reg = registry_dir.display();
    let one = serde_json::to_string(&serde_json::json!({"instances": [record]}))?;
    println!("\nServe it yourself (ctrl-c to stop), then call it from another terminal:");
    println!(
        "  slipway serve --registry {reg} --model credit@production --http 127.0.0.1:8080 --grpc 127.0.0.1:8081"
    );
    println!("  curl -s http://127.0.0.1:8080/v2/models/credit");
    println!("  curl -s http://127.0.0.1:8080/v1/models/credit:predict -d '{one}'");
    println!(
        "  curl -s http://127.0.0.1:8080/v2/models/credit/infer -d '{}'",
        v2_request(&production_dir, &record)?
    );
    println!("  # Python, Triton's client: pip install tritonclient[http]");
    println!("  #   import tritonclient.http as t; c = t.InferenceServerClient('127.0.0.1:8080')");
    println!(
        "  #   (gRPC: import tritonclient.grpc as t; c = t.InferenceServerClient('127.0.0.1:8081'))"
    );
    println!("  #   print(c.get_model_metadata('credit'))");
    println!("\nNext:");
    println!("  export SLIPWAY_REGISTRY={reg}");
    println!("  slipway models show credit");
    println!(
        "  slipway models example credit@production     # its inputs, and requests that work as printed"
    );
    println!(
        "  slipway eval --model credit@production --data LABELLED.csv   # on applicants it has not seen;"
    );
    println!(
        "  #   on {} it warns: it was trained on that file, and its held-out figures are above",
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

/// The first applicant of the bundled data as a V1 record (numbers as numbers).
fn first_record() -> Result<serde_json::Value> {
    let mut reader = csv::Reader::from_reader(GERMAN_CREDIT.as_bytes());
    let header = reader.headers()?.clone();
    let row = reader
        .records()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the bundled data is empty"))??;
    let mut record = serde_json::Map::new();
    for (name, value) in header.iter().zip(row.iter()) {
        if name == "creditability" {
            continue;
        }
        let v = match value.parse::<f64>() {
            Ok(x) => serde_json::json!(x),
            Err(_) => serde_json::json!(value),
        };
        record.insert(name.to_string(), v);
    }
    Ok(serde_json::Value::Object(record))
}

/// Starts the REST server on a free port with one package, sends one V1 request over a real
/// TCP connection, stops the server, and returns the address and the answer's body.
fn serve_and_ask(
    dir: &std::path::Path,
    version: &str,
    record: &serde_json::Value,
) -> Result<(String, String)> {
    use std::io::{Read, Write};
    let engine = std::sync::Arc::new(slipway_engine::Engine::new(1));
    engine.add("credit", version, slipway_runtime::load(dir)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let body = serde_json::to_string(&serde_json::json!({"instances": [record]}))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(slipway_server::serve(slipway_server::ServerConfig::new(listener), std::sync::Arc::clone(&engine), async move {
            let _ = stopped.await;
        }));
        let target = addr.clone();
        let answer = tokio::task::spawn_blocking(move || -> Result<String> {
            let mut stream = std::net::TcpStream::connect(&target)?;
            write!(
                stream,
                "POST /v1/models/credit:predict HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            let (head, payload) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "the server answered {head}");
            Ok(payload.to_string())
        })
        .await??;
        let _ = stop.send(());
        server.await??;
        engine.shutdown();
        Ok((addr, answer))
    })
}

/// The same applicant as an OIP v2 request: one input per column, as the signature says.
fn v2_request(dir: &std::path::Path, record: &serde_json::Value) -> Result<String> {
    let inputs: Vec<serde_json::Value> = package::read_manifest(dir)?
        .signature
        .inputs
        .iter()
        .map(|spec| {
            let value = record.get(&spec.name).cloned().unwrap_or(serde_json::Value::Null);
            serde_json::json!({"name": spec.name, "datatype": spec.datatype.as_str(), "shape": [1], "data": [value]})
        })
        .collect();
    Ok(serde_json::to_string(
        &serde_json::json!({"inputs": inputs}),
    )?)
}
