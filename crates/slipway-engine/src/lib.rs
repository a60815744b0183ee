//! Slipway's serving core: the models being served, by name and version; each model with its
//! own bounded queue and worker threads, which batch requests that arrive together (on a
//! single-threaded runtime a quick model's batches run on the runtime's thread instead; see
//! [`ModelConfig::inline_budget`]); every request checked against the model's signature before
//! it reaches a model. Nothing here knows about HTTP or gRPC.

pub mod batch;
mod repository;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
pub use batch::{Admission, BatchStats, ModelConfig, Scheduler};
pub use repository::{Entry, Event, LoadError, Repository, Source, State};

use slipway_core::{Manifest, Model, Signature, Tensor, TensorData};
use slipway_runtime::Loaded;

/// Why a request cannot be answered. Each front door maps these to its status codes in one place.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No model (or version) of that name is served.
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the model's signature, or the model refused its values.
    #[error("{0}")]
    InvalidInput(String),
    /// The server is shutting down or its workers are gone.
    #[error("{0}")]
    Unavailable(String),
    /// The model has no room for the request's rows now: refused at once rather than queued
    /// (retry shortly).
    #[error("{0}")]
    Overloaded(String),
    /// The request has more rows than the model may ever hold at once (split it).
    #[error("{0}")]
    TooLarge(String),
    /// The model failed on a request that matched its signature (it returned an error or
    /// panicked): answered 500 / INTERNAL without this text, which the front door logs; the
    /// server keeps serving.
    #[error("{0}")]
    Internal(String),
}

/// A model being served.
pub struct Served {
    pub name: String,
    /// The registry version (`1`, `2`, …), or `1` for a package folder.
    pub version: String,
    pub manifest: Manifest,
    pub model: Arc<dyn Model>,
    /// What this version has answered (the statistics extension).
    pub stats: Stats,
    /// Its queue and worker threads; they stop once this version is dropped and its queue is
    /// empty.
    pub scheduler: Scheduler,
    /// What a front door keeps per served version (the server's metric handles), made on the
    /// first request so later ones look nothing up.
    pub front_door: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
    /// Its columns and example requests, built on first use (see [`Served::example`]).
    example: std::sync::OnceLock<slipway_runtime::example::Example>,
}

/// Counters of one served version, updated without locks.
#[derive(Debug, Default)]
pub struct Stats {
    pub success: AtomicU64,
    pub success_ns: AtomicU64,
    pub fail: AtomicU64,
    pub fail_ns: AtomicU64,
    pub queue_ns: AtomicU64,
    pub compute_ns: AtomicU64,
    /// Rows inferred (the protocol's `inference_count`).
    pub rows: AtomicU64,
    /// Milliseconds since the epoch of the last inference (0: none yet).
    pub last_ms: AtomicU64,
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Stats {
    /// Counts a request refused before it reached the engine (it could not be decoded or
    /// converted), so the model's `fail` count covers every failed request.
    pub fn record_refused(&self, total: std::time::Duration) {
        self.record(false, total, None, 0);
    }

    fn record(&self, ok: bool, total: std::time::Duration, timing: Option<Timing>, rows: u64) {
        let (count, ns) = if ok {
            (&self.success, &self.success_ns)
        } else {
            (&self.fail, &self.fail_ns)
        };
        count.fetch_add(1, Ordering::Relaxed);
        ns.fetch_add(nanos(total), Ordering::Relaxed);
        if let Some(t) = timing {
            self.queue_ns.fetch_add(nanos(t.queue), Ordering::Relaxed);
            self.compute_ns
                .fetch_add(nanos(t.compute), Ordering::Relaxed);
        }
        if ok {
            self.rows.fetch_add(rows, Ordering::Relaxed);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        self.last_ms.store(now, Ordering::Relaxed);
    }
}

impl Served {
    /// Its columns (what training saw of them) and an example request for V1 and V2, built
    /// once per version.
    pub fn example(&self) -> &slipway_runtime::example::Example {
        self.example
            .get_or_init(|| slipway_runtime::example::example(&self.manifest))
    }

    /// The protocol's platform string: `slipway_native` or `onnx_onnxv1`.
    pub fn platform(&self) -> &'static str {
        match self.manifest.framework {
            slipway_core::Framework::Native => "slipway_native",
            slipway_core::Framework::Onnx => "onnx_onnxv1",
        }
    }

    pub fn signature(&self) -> &Signature {
        self.model.signature()
    }
}

/// Where a request's time went inside the engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Waiting for a worker thread (or for the network thread's turn to run the batch).
    pub queue: std::time::Duration,
    /// Running the model (on the whole batch).
    pub compute: std::time::Duration,
    /// Rows in the batch the request ran in.
    pub batch_rows: usize,
}

/// The models being served. Looking one up takes no lock.
pub struct Engine {
    models: ArcSwap<HashMap<String, Arc<Served>>>,
    /// Versions put into service since start (initial loads and swaps).
    pub loads: AtomicU64,
    /// Versions that failed to load (the watcher's and the repository extension's).
    pub load_failures: AtomicU64,
    defaults: ModelConfig,
    configs: RwLock<HashMap<String, ModelConfig>>,
    /// Serialises `add` and `remove` (never taken by requests).
    writer: Mutex<()>,
    nan: NanPolicy,
    repository: Repository,
}

impl Engine {
    /// An engine whose models each get `instances` worker threads (at least one) and the
    /// default batching.
    pub fn new(instances: usize) -> Engine {
        Engine::with_defaults(ModelConfig {
            instances: instances.max(1),
            ..ModelConfig::default()
        })
    }

    /// An engine whose models are scheduled as `defaults` says unless configured one by one.
    pub fn with_defaults(defaults: ModelConfig) -> Engine {
        Engine {
            models: ArcSwap::from_pointee(HashMap::new()),
            loads: AtomicU64::new(0),
            load_failures: AtomicU64::new(0),
            defaults,
            configs: RwLock::new(HashMap::new()),
            writer: Mutex::new(()),
            nan: NanPolicy::default(),
            repository: Repository::default(),
        }
    }

    /// Schedules model `name` as `config` says from its next load on (swaps included).
    pub fn set_model_config(&self, name: &str, config: ModelConfig) {
        if let Ok(mut c) = self.configs.write() {
            c.insert(name.to_string(), config);
        }
    }

    /// How model `name` is (or will be) scheduled.
    pub fn model_config(&self, name: &str) -> ModelConfig {
        self.configs
            .read()
            .ok()
            .and_then(|c| c.get(name).cloned())
            .unwrap_or_else(|| self.defaults.clone())
    }

    /// The engine with registry references resolved in the registry at `root`.
    #[must_use]
    pub fn with_registry(mut self, root: std::path::PathBuf) -> Engine {
        self.repository = Repository::new(Some(root));
        self
    }

    /// What the engine was asked to serve, and how each model stands.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The engine with NaN in float inputs read as `nan` says.
    #[must_use]
    pub fn with_nan_policy(mut self, nan: NanPolicy) -> Engine {
        self.nan = nan;
        self
    }

    /// Stops serving `name`, and following its source until it is loaded again; requests
    /// already running finish. Returns whether it was served, or known to the repository (a
    /// model whose package does not load can be unloaded, which stops the retries).
    pub fn remove(&self, name: &str) -> bool {
        let _w = self.writer.lock();
        let known = self.repository.unloaded(name);
        let current = self.models.load_full();
        if !current.contains_key(name) {
            return known;
        }
        let mut next = (*current).clone();
        next.remove(name);
        self.models.store(Arc::new(next));
        true
    }

    /// Serves a loaded package under `name` and `version`, replacing any model of that name.
    /// Its workers start here; the replaced version finishes its queue and stops.
    pub fn add(&self, name: &str, version: &str, loaded: Loaded) {
        let scheduler = Scheduler::start(name, Arc::clone(&loaded.model), self.model_config(name));
        let served = Arc::new(Served {
            name: name.to_string(),
            version: version.to_string(),
            manifest: loaded.manifest,
            model: loaded.model,
            stats: Stats::default(),
            scheduler,
            front_door: std::sync::OnceLock::new(),
            example: std::sync::OnceLock::new(),
        });
        let _w = self.writer.lock();
        let mut next = (*self.models.load_full()).clone();
        next.insert(name.to_string(), served);
        self.models.store(Arc::new(next));
        self.repository.served(name);
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    /// The model `name`, at `version` if one is asked for.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<Served>, EngineError> {
        let Some(served) = self.models.load().get(name).cloned() else {
            return Err(match self.repository.state(name) {
                Some(State::Unavailable(_)) => EngineError::Unavailable(format!(
                    "model `{}` failed to load (its package is broken); the server log has the reason, and the index shows the state",
                    clip(name)
                )),
                Some(State::Loading) => {
                    EngineError::Unavailable(format!("model `{}` is still loading", clip(name)))
                }
                Some(State::Unloaded) => EngineError::NotFound(format!(
                    "model `{}` was unloaded; load it again with POST /v2/repository/models/{}/load",
                    clip(name),
                    clip(name)
                )),
                Some(State::Ready) | None => {
                    EngineError::NotFound(format!("model `{}` is not served here", clip(name)))
                }
            });
        };
        match version {
            Some(v) if v != served.version => Err(EngineError::NotFound(format!(
                "model `{}` is served at version {}, not {}",
                clip(name),
                served.version,
                clip(v)
            ))),
            Some(_) | None => Ok(served),
        }
    }

    /// Every model served, sorted by name.
    pub fn models(&self) -> Vec<Arc<Served>> {
        let mut all: Vec<Arc<Served>> = self.models.load().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Admits `inputs` (see [`Scheduler::admit`]), checks them against the model's signature,
    /// then runs the model on a worker thread (or, for a quick model on a single-threaded
    /// runtime, on the runtime's thread).
    pub async fn infer(
        &self,
        served: Arc<Served>,
        inputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>, EngineError> {
        self.infer_timed(served, inputs).await.map(|(out, _)| out)
    }

    /// [`infer`](Self::infer), also saying how long the request waited for a worker and how
    /// long the model took.
    pub async fn infer_timed(
        &self,
        served: Arc<Served>,
        inputs: Vec<Tensor>,
    ) -> Result<(Vec<Tensor>, Timing), EngineError> {
        let owner = Arc::clone(&served);
        let mut admission = owner.scheduler.admit()?;
        self.infer_admitted(served, inputs, &mut admission).await
    }

    /// Runs a request a front door has already admitted: `admission` claims the request's
    /// rows (a no-op when the front door claimed them while decoding), and holds them until
    /// the caller drops it.
    pub async fn infer_admitted(
        &self,
        served: Arc<Served>,
        inputs: Vec<Tensor>,
        admission: &mut Admission<'_>,
    ) -> Result<(Vec<Tensor>, Timing), EngineError> {
        let start = std::time::Instant::now();
        let rows = rows_of(&inputs);
        let stats_of = Arc::clone(&served);
        let result = match admission.claim(rows) {
            Ok(()) => self.run(served, inputs, admission).await,
            Err(e) => Err(e),
        };
        stats_of.stats.record(
            result.is_ok(),
            start.elapsed(),
            result.as_ref().ok().map(|r| r.1),
            rows as u64,
        );
        result
    }

    async fn run(
        &self,
        served: Arc<Served>,
        inputs: Vec<Tensor>,
        admission: &mut Admission<'_>,
    ) -> Result<(Vec<Tensor>, Timing), EngineError> {
        validate(served.signature(), &inputs, self.nan)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        served
            .scheduler
            .submit(served.signature(), inputs, admission, tx)?;
        rx.await
            .map_err(|_| EngineError::Unavailable("the inference worker stopped".into()))?
    }

    /// Stops taking work: every model finishes its queue and its workers stop.
    pub fn shutdown(&self) {
        for m in self.models.load().values() {
            m.scheduler.stop();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What a NaN in a float input means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NanPolicy {
    /// A missing value: native models impute it with the training median, ONNX graphs get it
    /// as it is (tree ensembles follow their missing-value branch).
    #[default]
    Missing,
    /// Refused with 400 / `INVALID_ARGUMENT`.
    Reject,
}

impl std::str::FromStr for NanPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "missing" => Ok(NanPolicy::Missing),
            "reject" => Ok(NanPolicy::Reject),
            other => Err(format!(
                "unknown NaN policy `{other}`; use `missing` or `reject`"
            )),
        }
    }
}

/// Checks names, datatypes, ranks, fixed dimensions and element counts against the signature,
/// then the values of float inputs: infinities are always refused (no model is trained on
/// them), NaN as `nan` says.
pub fn validate(
    signature: &Signature,
    inputs: &[Tensor],
    nan: NanPolicy,
) -> Result<(), EngineError> {
    signature
        .check_inputs(inputs)
        .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
    // Every input with a batch dimension has the same rows (what admission counted).
    let mut batch: Option<(&str, usize)> = None;
    for spec in signature
        .inputs
        .iter()
        .filter(|s| s.shape.first() == Some(&-1))
    {
        let Some(t) = inputs.iter().find(|t| t.name == spec.name) else {
            continue;
        };
        let Some(&rows) = t.shape.first() else {
            continue;
        };
        match batch {
            Some((first, n)) if n != rows => {
                return Err(EngineError::InvalidInput(format!(
                    "input `{}` has {rows} rows but `{first}` has {n}; every input needs the same rows",
                    t.name
                )));
            }
            Some(_) => {}
            None => batch = Some((t.name.as_str(), rows)),
        }
    }
    for t in inputs {
        let bad = match &t.data {
            TensorData::Fp32(v) => v
                .iter()
                .position(|x| !x.is_finite() && (nan == NanPolicy::Reject || !x.is_nan()))
                .map(|i| (i, v[i].is_nan())),
            TensorData::Fp64(v) => v
                .iter()
                .position(|x| !x.is_finite() && (nan == NanPolicy::Reject || !x.is_nan()))
                .map(|i| (i, v[i].is_nan())),
            TensorData::Bool(_) | TensorData::Int64(_) | TensorData::Bytes(_) => None,
        };
        if let Some((i, is_nan)) = bad {
            return Err(EngineError::InvalidInput(if is_nan {
                format!(
                    "input `{}` element {i} is NaN, and this server refuses missing values (started with --nan reject)",
                    t.name
                )
            } else {
                format!(
                    "input `{}` element {i} is infinite; send a finite number, or NaN for a missing value",
                    t.name
                )
            }));
        }
    }
    Ok(())
}

/// A request's rows, as admission counts them: the largest first dimension of its inputs, and
/// at least one (a request of no rows still takes a turn of the model).
pub fn rows_of(inputs: &[Tensor]) -> usize {
    inputs
        .iter()
        .filter_map(|t| t.shape.first().copied())
        .max()
        .unwrap_or(1)
        .max(1)
}

/// A user-supplied name cut to at most 64 characters for an error message.
pub(crate) fn clip(name: &str) -> std::borrow::Cow<'_, str> {
    match name.char_indices().nth(64) {
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &name[..end])),
        None => std::borrow::Cow::Borrowed(name),
    }
}

/// Follows the repository's sources (such as `credit@production`): when a reference resolves
/// to another version, that version is materialised, loaded and warmed on this thread, then
/// swapped in atomically; a model that failed to load is tried again when its alias moves.
/// Requests already running finish on the version they started with, which is dropped when
/// its last request ends; no request waits on a load.
pub struct Watcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts syncing `engine`'s repository every `interval`. `log` hears about every load
    /// and every failed one (the old version keeps serving when a new one fails to load).
    pub fn start(
        engine: Arc<Engine>,
        interval: std::time::Duration,
        log: impl Fn(&Event) + Send + 'static,
    ) -> Watcher {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("slipway-watch".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    for event in engine.repository().sync(&engine) {
                        log(&event);
                    }
                    // Sleep in short steps so that stopping is prompt.
                    let mut slept = std::time::Duration::ZERO;
                    while slept < interval && !flag.load(std::sync::atomic::Ordering::Relaxed) {
                        let step = std::time::Duration::from_millis(50).min(interval - slept);
                        std::thread::sleep(step);
                        slept += step;
                    }
                }
            })
            .expect("spawning the registry watcher");
        Watcher {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops watching.
    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
