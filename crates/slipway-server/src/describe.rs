//! What the protocol tells about a served model, built once from the engine's records and
//! written by each transport in its own shape: metadata (name, versions, platform, tensors)
//! and Triton's statistics.

use std::sync::atomic::Ordering::Relaxed;

use slipway_core::TensorSpec;
use slipway_engine::Served;

/// A model's metadata.
#[derive(Debug, serde::Serialize)]
pub struct Metadata<'a> {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<TensorMeta>,
    pub outputs: Vec<TensorMeta>,
    /// REST only (the gRPC message has no such field): the model's columns (kinds, categories,
    /// ranges seen in training) and an example request for V1 and V2, as `slipway models
    /// example` prints them; built once per version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<&'a slipway_runtime::example::Example>,
}

/// One tensor of a model's signature, as the protocol names it.
#[derive(Debug, serde::Serialize)]
pub struct TensorMeta {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

impl<'a> Metadata<'a> {
    /// The metadata with the example in `parameters`, as REST answers it.
    pub fn with_example(served: &'a Served) -> Metadata<'a> {
        Metadata {
            parameters: Some(served.example()),
            ..Metadata::of(served)
        }
    }

    /// The metadata gRPC's message has room for.
    pub fn of(served: &Served) -> Metadata<'a> {
        let sig = served.signature();
        let tensors = |list: &[TensorSpec]| {
            list.iter()
                .map(|t| TensorMeta {
                    name: t.name.clone(),
                    datatype: t.datatype.as_str(),
                    shape: t.shape.clone(),
                })
                .collect()
        };
        Metadata {
            name: served.name.clone(),
            versions: vec![served.version.clone()],
            platform: served.platform(),
            inputs: tensors(&sig.inputs),
            outputs: tensors(&sig.outputs),
            parameters: None,
        }
    }
}

/// A count and the nanoseconds spent on it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Duration {
    pub count: u64,
    pub ns: u64,
}

/// Triton's `inference_stats`.
#[derive(Debug, serde::Serialize)]
pub struct InferStats {
    pub success: Duration,
    pub fail: Duration,
    pub queue: Duration,
    pub compute_input: Duration,
    pub compute_infer: Duration,
    pub compute_output: Duration,
}

/// Triton's `batch_stats` entry: executions of one batch size.
#[derive(Debug, serde::Serialize)]
pub struct BatchStat {
    pub batch_size: usize,
    pub compute_input: Duration,
    pub compute_infer: Duration,
    pub compute_output: Duration,
}

/// One model's statistics, in Triton's shape.
#[derive(Debug, serde::Serialize)]
pub struct Stats {
    pub name: String,
    pub version: String,
    pub last_inference: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    pub inference_stats: InferStats,
    pub batch_stats: Vec<BatchStat>,
}

impl Stats {
    pub fn of(m: &Served) -> Stats {
        let s = &m.stats;
        let ok = s.success.load(Relaxed);
        let pair = |count: u64, ns: u64| Duration { count, ns };
        Stats {
            name: m.name.clone(),
            version: m.version.clone(),
            last_inference: s.last_ms.load(Relaxed),
            inference_count: s.rows.load(Relaxed),
            execution_count: ok,
            inference_stats: InferStats {
                success: pair(ok, s.success_ns.load(Relaxed)),
                fail: pair(s.fail.load(Relaxed), s.fail_ns.load(Relaxed)),
                queue: pair(ok, s.queue_ns.load(Relaxed)),
                compute_input: pair(ok, 0),
                compute_infer: pair(ok, s.compute_ns.load(Relaxed)),
                compute_output: pair(ok, 0),
            },
            batch_stats: m
                .scheduler
                .batches
                .snapshot()
                .into_iter()
                .map(|(batch_size, count, ns)| BatchStat {
                    batch_size,
                    compute_input: pair(count, 0),
                    compute_infer: pair(count, ns),
                    compute_output: pair(count, 0),
                })
                .collect(),
        }
    }
}
