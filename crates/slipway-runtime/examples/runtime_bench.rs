//! In-process latency of Slipway's ONNX runtime, the counterpart of `bench/runtime_bench.py`
//! (onnxruntime). Driven by `bench/runtime.sh`; see `bench/README.md`.
//!
//! ```text
//! runtime_bench [--engine auto|interpreter|tract] [--rows 1,256] [--budget-ms 500]
//!               [--loads 20] [--fixtures DIR] MODEL.onnx...
//! ```
//!
//! For each model (its fixture is `MODEL.json`, or `DIR/<stem>.json` with `--fixtures`):
//!
//! - **load**: `std::fs::read` + `OnnxModel::from_bytes` (decode, plan, warm with one row),
//!   `--loads` times; the median and the minimum are reported.
//! - **infer**: for each batch size, an input made by tiling the fixture's rows; `infer` is
//!   called for 50 ms (warm-up), then until `--budget-ms` has passed (at least 20 calls), and
//!   every call is timed on its own. The median call is reported, and divided by the rows.
//!
//! One JSON line per model on stdout. Everything runs on the calling thread.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use slipway_core::{Model, Tensor, TensorData};
use slipway_runtime::{EngineChoice, OnnxModel};

struct Args {
    engine: EngineChoice,
    rows: Vec<usize>,
    budget: Duration,
    loads: usize,
    fixtures: Option<PathBuf>,
    models: Vec<PathBuf>,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "runtime_bench: {msg}\nusage: runtime_bench [--engine auto|interpreter|tract] \
         [--rows 1,256] [--budget-ms 500] [--loads 20] [--fixtures DIR] MODEL.onnx..."
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        engine: EngineChoice::Auto,
        rows: vec![1, 256],
        budget: Duration::from_millis(500),
        loads: 20,
        fixtures: None,
        models: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--engine" => {
                a.engine = match value("--engine").as_str() {
                    "auto" => EngineChoice::Auto,
                    "interpreter" => EngineChoice::Interpreter,
                    "tract" => EngineChoice::Tract,
                    other => usage(&format!("unknown engine `{other}`")),
                }
            }
            "--rows" => {
                a.rows = value("--rows")
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| usage("bad --rows")))
                    .collect()
            }
            "--budget-ms" => {
                a.budget = Duration::from_millis(
                    value("--budget-ms")
                        .parse()
                        .unwrap_or_else(|_| usage("bad --budget-ms")),
                )
            }
            "--loads" => {
                a.loads = value("--loads")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --loads"))
            }
            "--fixtures" => a.fixtures = Some(PathBuf::from(value("--fixtures"))),
            "-h" | "--help" => usage("help"),
            s if s.starts_with('-') => usage(&format!("unknown option {s}")),
            _ => a.models.push(PathBuf::from(arg)),
        }
    }
    if a.models.is_empty() {
        usage("no model given");
    }
    a
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The fixture's inputs, tiled (row by row, cyclically) to `rows` rows.
fn tiled_inputs(fixture: &Json, rows: usize) -> Result<Vec<Tensor>, String> {
    let inputs = fixture["inputs"]
        .as_array()
        .ok_or("fixture has no inputs")?;
    inputs
        .iter()
        .map(|inp| {
            let name = inp["name"]
                .as_str()
                .ok_or("input without a name")?
                .to_string();
            let shape: Vec<usize> = inp["shape"]
                .as_array()
                .ok_or("input without a shape")?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize).ok_or("bad dim"))
                .collect::<Result<_, _>>()?;
            let data = inp["data"].as_array().ok_or("input without data")?;
            let n = *shape.first().ok_or("0-d input")?;
            let width: usize = shape[1..].iter().product();
            if n == 0 || data.len() != n * width {
                return Err(format!(
                    "input `{name}`: {} values for shape {shape:?}",
                    data.len()
                ));
            }
            let pick = |r: usize, j: usize| &data[(r % n) * width + j];
            let idx = (0..rows).flat_map(|r| (0..width).map(move |j| (r, j)));
            let dt = inp["datatype"].as_str().unwrap_or("");
            let td = match dt {
                "FP32" => TensorData::Fp32(idx.map(|(r, j)| num(pick(r, j)) as f32).collect()),
                "FP64" => TensorData::Fp64(idx.map(|(r, j)| num(pick(r, j))).collect()),
                "INT64" => {
                    TensorData::Int64(idx.map(|(r, j)| pick(r, j).as_i64().unwrap_or(0)).collect())
                }
                "BOOL" => TensorData::Bool(
                    idx.map(|(r, j)| pick(r, j).as_bool().unwrap_or(false))
                        .collect(),
                ),
                "BYTES" => TensorData::Bytes(
                    idx.map(|(r, j)| pick(r, j).as_str().unwrap_or("").as_bytes().to_vec())
                        .collect(),
                ),
                other => return Err(format!("input `{name}`: datatype {other}")),
            };
            let mut out_shape = shape.clone();
            out_shape[0] = rows;
            Ok(Tensor {
                name,
                shape: out_shape,
                data: td,
            })
        })
        .collect()
}

/// A JSON number, or NaN / ±Infinity written as strings.
fn num(v: &Json) -> f64 {
    match v {
        Json::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Json::String(s) => match s.to_ascii_lowercase().as_str() {
            "inf" | "infinity" | "+inf" => f64::INFINITY,
            "-inf" | "-infinity" => f64::NEG_INFINITY,
            _ => f64::NAN,
        },
        Json::Null | Json::Bool(_) | Json::Array(_) | Json::Object(_) => f64::NAN,
    }
}

/// Sum of every numeric output element (labels included, strings skipped): compared with
/// onnxruntime's to catch a benchmark that times different work.
fn checksum(out: &[Tensor]) -> f64 {
    out.iter()
        .map(|t| match &t.data {
            TensorData::Fp32(v) => v.iter().map(|&x| f64::from(x)).sum(),
            TensorData::Fp64(v) => v.iter().sum(),
            TensorData::Int64(v) => v.iter().map(|&x| x as f64).sum(),
            TensorData::Bool(v) => v.iter().filter(|&&b| b).count() as f64,
            TensorData::Bytes(_) => 0.0,
        })
        .sum()
}

/// Minor page faults of this process so far (0 where /proc is missing): a call that faults
/// every time is paying for memory the allocator gave back to the kernel.
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.split_whitespace().nth(7)?.to_string();
            after.parse().ok()
        })
        .unwrap_or(0)
}

/// Times `f` call by call: 50 ms of warm-up, then until `budget` (at least 20 calls).
/// Returns (median µs, min µs, calls).
fn time_calls(budget: Duration, mut f: impl FnMut()) -> (f64, f64, usize) {
    let warm_end = Instant::now() + Duration::from_millis(50);
    let mut w = 0;
    while w < 5 || Instant::now() < warm_end {
        f();
        w += 1;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 20 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let n = samples.len();
    (median(&mut samples), min, n)
}

fn bench_one(args: &Args, path: &Path) -> Result<Json, String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    let fixture_path = match &args.fixtures {
        Some(dir) => dir.join(format!("{stem}.json")),
        None => path.with_extension("json"),
    };
    let fixture: Json = serde_json::from_slice(
        &std::fs::read(&fixture_path).map_err(|e| format!("{}: {e}", fixture_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", fixture_path.display()))?;

    // Load + warm, `loads` times; the last model is kept.
    let mut load_ms = Vec::new();
    let mut model = None;
    for _ in 0..args.loads.max(1) {
        let t = Instant::now();
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let m = OnnxModel::from_bytes(&bytes, args.engine).map_err(|e| e.to_string())?;
        load_ms.push(t.elapsed().as_secs_f64() * 1e3);
        drop(model.replace(m));
    }
    let model = model.ok_or("no load")?;
    let load_min = load_ms.iter().copied().fold(f64::INFINITY, f64::min);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);

    let mut batches = Vec::new();
    for &rows in &args.rows {
        let inputs = tiled_inputs(&fixture, rows)?;
        // One checked call before timing.
        let out = model
            .infer(&inputs)
            .map_err(|e| format!("rows {rows}: {e}"))?;
        let out_shapes: Vec<Vec<usize>> = out.iter().map(|t| t.shape.clone()).collect();
        let sum = checksum(&out);
        let faults = minor_faults();
        let (med, min, calls) = time_calls(args.budget, || {
            let out = model.infer(std::hint::black_box(&inputs)).expect("infer");
            std::hint::black_box(out);
        });
        let faults = minor_faults() - faults;
        batches.push(json!({
            "rows": rows,
            "us_per_call": med,
            "us_per_call_min": min,
            "us_per_row": med / rows as f64,
            "calls": calls,
            "minor_faults_per_call": faults as f64 / calls as f64,
            "output_shapes": out_shapes,
            "checksum": sum,
        }));
    }
    Ok(json!({
        "case": stem,
        "runtime": "slipway",
        "engine": model.info.engine,
        "model_bytes": size,
        "operators": model.info.operators,
        "load_ms": median(&mut load_ms.clone()),
        "load_ms_min": load_min,
        "loads": load_ms.len(),
        "batches": batches,
    }))
}

fn main() {
    let args = parse_args();
    let mut failed = false;
    for path in &args.models {
        match bench_one(&args, path) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                failed = true;
                eprintln!("runtime_bench: {}: {e}", path.display());
                let case = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                println!(
                    "{}",
                    json!({"case": case, "runtime": "slipway", "error": e})
                );
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
