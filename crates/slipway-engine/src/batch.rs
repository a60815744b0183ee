//! One model's scheduler: a bounded queue and the model's own worker threads (its instances),
//! which merge requests that are waiting together into one batch, run it, and split the
//! answers back. A request whose inputs cannot be merged runs alone; when a merged batch fails,
//! each of its requests is run alone, so one request's bad values never fail its batch-mates.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use slipway_core::{Model, Signature, Tensor, TensorData};

use crate::{EngineError, Timing};

/// How one model is scheduled (Triton's and MLServer's dynamic batching settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// Worker threads running this model, each its own (at least one).
    pub instances: usize,
    /// Most rows merged into one batch; 0 or 1 turns batching off. A request with more rows
    /// than this runs alone, whole.
    pub max_batch_size: usize,
    /// How long the first request of a batch may wait for others. Zero: merge only what is
    /// already queued when a worker comes free, which never adds latency.
    pub max_queue_delay: Duration,
    /// Batch sizes (rows) at which a batch runs at once instead of waiting for more.
    pub preferred_batch_sizes: Vec<usize>,
    /// Rows that may wait (the queue is bounded by work, not by requests: 2,048 single-row
    /// requests, or 8 of 256 rows); a request that would go past it is refused at once
    /// (`Overloaded`). A request larger than this is still taken when nothing waits.
    pub queue_capacity: usize,
    /// For requests made on a single-threaded tokio runtime (`slipway serve` runs one when it
    /// has one core), a batch the model is expected to compute within this budget runs on the
    /// runtime's thread, after every request read in the same turn of the event loop has
    /// joined it, instead of on the model's worker thread: on one core the hop costs two
    /// context switches and a wake-up per request, more than a small model's compute. The
    /// expectation is the larger of the model's average execution and its average row times
    /// `max_batch_size`, both moving averages. A model not yet measured, one measured slower,
    /// requests larger than `max_batch_size` (the hop is small beside their compute, and on
    /// the network thread they would hold back the answers read with them), and any
    /// `max_queue_delay` keep to the workers, and a batch that no longer fits when its turn
    /// comes is handed to them; so a model that is slow never holds up a fast one, beyond the
    /// one execution in which it became slow. Zero: always the workers.
    pub inline_budget: Duration,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            instances: std::thread::available_parallelism().map_or(1, usize::from),
            max_batch_size: 64,
            max_queue_delay: Duration::ZERO,
            preferred_batch_sizes: Vec::new(),
            queue_capacity: 2048,
            inline_budget: Duration::from_micros(500),
        }
    }
}

impl ModelConfig {
    /// Whether requests may be merged.
    pub fn batching(&self) -> bool {
        self.max_batch_size > 1
    }

    /// Applies `key=value` settings (`instances`, `max_batch_size`, `max_queue_delay_us`,
    /// `preferred_batch_sizes` as `8|16`, `queue_capacity`, `inline_budget_us`, `batching=off`).
    pub fn apply(&mut self, settings: &str) -> Result<(), String> {
        for pair in settings.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not KEY=VALUE"))?;
            let (key, value) = (key.trim(), value.trim());
            let number = |v: &str| -> Result<usize, String> {
                v.parse()
                    .map_err(|_| format!("{key} must be a whole number, not `{v}`"))
            };
            match key {
                "instances" => self.instances = number(value)?.max(1),
                "max_batch_size" => self.max_batch_size = number(value)?,
                "max_queue_delay_us" => {
                    self.max_queue_delay = Duration::from_micros(number(value)? as u64);
                }
                "preferred_batch_sizes" => {
                    self.preferred_batch_sizes = value
                        .split('|')
                        .filter(|v| !v.is_empty())
                        .map(number)
                        .collect::<Result<_, _>>()?;
                }
                "queue_capacity" => self.queue_capacity = number(value)?.max(1),
                "inline_budget_us" => {
                    self.inline_budget = Duration::from_micros(number(value)? as u64);
                }
                "batching" => match value {
                    "off" | "false" => self.max_batch_size = 0,
                    "on" | "true" => {
                        if !self.batching() {
                            self.max_batch_size = ModelConfig::default().max_batch_size;
                        }
                    }
                    other => return Err(format!("batching is on or off, not `{other}`")),
                },
                other => {
                    return Err(format!(
                        "unknown setting `{other}`; use instances, max_batch_size, max_queue_delay_us, preferred_batch_sizes, queue_capacity, inline_budget_us or batching"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Executions by batch size (rows): Triton's `batch_stats`. Written once per execution, by a
/// worker or by the network thread that ran the batch.
#[derive(Debug)]
pub struct BatchStats {
    by_size: Mutex<std::collections::BTreeMap<usize, (u64, u64)>>,
    /// Executions that merged more than one request.
    pub merged: AtomicU64,
    /// Compute time per row, and per execution, in ns: moving averages over executions
    /// (`u64::MAX` before the first). What decides whether a batch may run on the network
    /// thread.
    ns_per_row: AtomicU64,
    ns_per_execution: AtomicU64,
    /// Executions run on the network thread rather than a worker (counted in `snapshot` too).
    pub inline: AtomicU64,
}

impl Default for BatchStats {
    fn default() -> Self {
        BatchStats {
            by_size: Mutex::default(),
            merged: AtomicU64::new(0),
            ns_per_row: AtomicU64::new(u64::MAX),
            ns_per_execution: AtomicU64::new(u64::MAX),
            inline: AtomicU64::new(0),
        }
    }
}

impl BatchStats {
    /// Whether a batch of `rows` is expected to compute within `budget`: the larger of the
    /// average execution and the average row times `rows`, so neither a fixed cost nor a
    /// cost per row hides behind the other. Never, before the first execution.
    fn fits(&self, rows: usize, budget: Duration) -> bool {
        let budget = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        let per_row = self.ns_per_row.load(Ordering::Relaxed);
        let per_execution = self.ns_per_execution.load(Ordering::Relaxed);
        per_execution <= budget && per_row.saturating_mul(rows.max(1) as u64) <= budget
    }

    fn record(&self, rows: usize, requests: usize, compute: Duration, on_network: bool) {
        if on_network {
            self.inline.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(compute.as_nanos()).unwrap_or(u64::MAX);
        // Moving averages (weight 1/8), so that one batch slowed by an interrupt does not send
        // the next requests to the worker.
        let average = |into: &AtomicU64, value: u64| {
            let before = into.load(Ordering::Relaxed);
            let after = if before == u64::MAX {
                value
            } else {
                before - before / 8 + value / 8
            };
            into.store(after, Ordering::Relaxed);
        };
        average(&self.ns_per_row, ns / rows.max(1) as u64);
        average(&self.ns_per_execution, ns);
        if let Ok(mut m) = self.by_size.lock() {
            let e = m.entry(rows).or_default();
            e.0 += 1;
            e.1 += ns;
        }
        if requests > 1 {
            self.merged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(batch size in rows, executions, compute ns)`, by size.
    pub fn snapshot(&self) -> Vec<(usize, u64, u64)> {
        self.by_size
            .lock()
            .map(|m| m.iter().map(|(&k, &(c, ns))| (k, c, ns)).collect())
            .unwrap_or_default()
    }
}

pub(crate) type Reply = tokio::sync::oneshot::Sender<Result<(Vec<Tensor>, Timing), EngineError>>;

/// One request waiting for a worker, or for the network thread (see [`ModelConfig::inline_budget`]).
pub(crate) struct Job {
    inputs: Vec<Tensor>,
    rows: usize,
    /// What must agree for two requests to merge: every input's dimensions after the first,
    /// in signature order. `None`: this request runs alone.
    key: Option<Vec<Vec<usize>>>,
    enqueued: Instant,
    reply: Reply,
}

enum Msg {
    Job(Job),
    Stop,
}

/// The queue and the workers of one served version.
pub struct Scheduler {
    core: Arc<Core>,
    /// Rows of the last request queued: the guess for the next one, before it is decoded.
    last_rows: AtomicUsize,
    /// Rows admitted by a front door and not yet answered (decoding, queued or running).
    in_flight: AtomicUsize,
    /// Kept to answer whatever is still queued once the workers have stopped.
    rx: Receiver<Msg>,
    closed: std::sync::atomic::AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
    pub batches: Arc<BatchStats>,
}

/// What a scheduler shares with the task that runs batches on a single-threaded network
/// runtime (see [`ModelConfig::inline_budget`]): the workers' channel, the model, its settings
/// and statistics, the rows queued, and the network thread's own queue, where requests wait
/// while the event loop reads the others that arrived with them; one task, spawned behind
/// them, then runs what has gathered.
struct Core {
    tx: Sender<Msg>,
    model: Arc<dyn Model>,
    config: ModelConfig,
    stats: Arc<BatchStats>,
    /// Rows queued and not yet taken by a worker or the network thread.
    queued: Arc<AtomicUsize>,
    waiting: Mutex<InlineQueue>,
}

/// The task that runs the network thread's queue. Dropped before it has run (its runtime shut down
/// first), it answers what was queued and reopens the queue, so that nothing waits forever
/// and a request from another runtime can still spawn a task.
struct Pending {
    core: Arc<Core>,
    done: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.core
                .abandon("the runtime that was to run this request has stopped; retry");
        }
    }
}

#[derive(Default)]
struct InlineQueue {
    jobs: Vec<Job>,
    /// A task is on its way to run `jobs`.
    scheduled: bool,
}

impl Core {
    /// Queues `job`, and spawns the task that runs the queue unless one is already coming.
    fn push(self: &Arc<Self>, job: Job) {
        let spawn = match self.waiting.lock() {
            Ok(mut q) => {
                q.jobs.push(job);
                !std::mem::replace(&mut q.scheduled, true)
            }
            Err(_) => {
                self.queued.fetch_sub(job.rows, Ordering::AcqRel);
                let _ = job.reply.send(Err(EngineError::Unavailable(
                    "the model's queue is broken; restart the server".into(),
                )));
                false
            }
        };
        if spawn {
            let task = Pending {
                core: Arc::clone(self),
                done: false,
            };
            tokio::spawn(async move {
                let mut task = task;
                task.core.run_waiting();
                task.done = true;
            });
        }
    }

    /// Answers what is queued with `Unavailable` (`why`) and lets the next request spawn a task
    /// again.
    fn abandon(&self, why: &str) {
        let left = match self.waiting.lock() {
            Ok(mut q) => {
                q.scheduled = false;
                std::mem::take(&mut q.jobs)
            }
            Err(_) => return,
        };
        let rows: usize = left.iter().map(|j| j.rows).sum();
        self.queued.fetch_sub(rows, Ordering::AcqRel);
        for j in left {
            let _ = j.reply.send(Err(EngineError::Unavailable(why.into())));
        }
    }

    /// Takes what is queued (every request read in this turn of the event loop) and runs it
    /// in batches, as a worker would.
    fn run_waiting(&self) {
        loop {
            let jobs = match self.waiting.lock() {
                Ok(mut q) if !q.jobs.is_empty() => std::mem::take(&mut q.jobs),
                Ok(mut q) => {
                    q.scheduled = false;
                    return;
                }
                Err(_) => return,
            };
            let rows: usize = jobs.iter().map(|j| j.rows).sum();
            self.queued.fetch_sub(rows, Ordering::AcqRel);
            self.run_in_batches(jobs);
        }
    }

    /// Runs `jobs` (taken in arrival order) as batches: each request joins the batch before
    /// it when their shapes agree and the batch has room, as a worker gathers them. Should the
    /// model's estimate pass the budget on the way (it grew slower, or the batches are bigger
    /// than the ones it was measured on), the rest goes to its workers.
    fn run_in_batches(&self, jobs: Vec<Job>) {
        let config = &self.config;
        let mut batches: Vec<(Vec<Job>, usize)> = Vec::new();
        for job in jobs {
            match batches.last_mut() {
                Some((batch, rows))
                    if job.key.is_some()
                        && job.key == batch[0].key
                        && *rows + job.rows <= config.max_batch_size
                        && !config.preferred_batch_sizes.contains(rows) =>
                {
                    *rows += job.rows;
                    batch.push(job);
                }
                _ => {
                    let rows = job.rows;
                    batches.push((vec![job], rows));
                }
            }
        }
        let mut batches = batches.into_iter();
        for (batch, rows) in batches.by_ref() {
            if !self.stats.fits(rows, config.inline_budget) {
                self.to_workers(batch);
                break;
            }
            run(self.model.as_ref(), batch, rows, &self.stats, true);
        }
        for (batch, _) in batches {
            self.to_workers(batch);
        }
    }

    fn to_workers(&self, jobs: Vec<Job>) {
        for job in jobs {
            self.queued.fetch_add(job.rows, Ordering::AcqRel);
            // Should the workers be gone, the dropped reply answers the request `Unavailable`.
            let _ = self.send(job);
        }
    }

    /// Sends a job, already counted in `queued`, to the workers.
    fn send(&self, job: Job) -> Result<(), EngineError> {
        let rows = job.rows;
        self.tx.send(Msg::Job(job)).map_err(|_| {
            self.queued.fetch_sub(rows, Ordering::AcqRel);
            EngineError::Unavailable("the model's workers have stopped".into())
        })
    }
}

impl Scheduler {
    /// Starts `config.instances` workers for `model`, named after it.
    pub fn start(name: &str, model: Arc<dyn Model>, config: ModelConfig) -> Scheduler {
        // Unbounded: `queued` bounds it, by rows.
        let (tx, rx) = crossbeam_channel::unbounded();
        let batches = Arc::new(BatchStats::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let workers = (0..config.instances.max(1))
            .map(|i| {
                let rx = rx.clone();
                let model = Arc::clone(&model);
                let config = config.clone();
                let batches = Arc::clone(&batches);
                let queued = Arc::clone(&queued);
                let short: String = name.chars().take(8).collect();
                std::thread::Builder::new()
                    .name(format!("infer-{short}-{i}"))
                    .spawn(move || work(&rx, &queued, model.as_ref(), &config, &batches))
                    .expect("spawning an inference thread")
            })
            .collect();
        Scheduler {
            core: Arc::new(Core {
                tx,
                model,
                config,
                stats: Arc::clone(&batches),
                queued,
                waiting: Mutex::default(),
            }),
            last_rows: AtomicUsize::new(1),
            in_flight: AtomicUsize::new(0),
            rx,
            closed: std::sync::atomic::AtomicBool::new(false),
            workers: Mutex::new(workers),
            batches,
        }
    }

    /// The settings this model runs with.
    pub fn config(&self) -> &ModelConfig {
        &self.core.config
    }

    /// Queues a checked request; refused at once when the queue is full.
    pub(crate) fn submit(
        &self,
        signature: &Signature,
        inputs: Vec<Tensor>,
        reply: Reply,
    ) -> Result<(), EngineError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        let (rows, key) = batch_key(signature, &inputs);
        let job = Job {
            inputs,
            rows,
            key: key.filter(|_| self.core.config.batching()),
            enqueued: Instant::now(),
            reply,
        };
        self.last_rows.store(rows, Ordering::Relaxed);
        let core = &self.core;
        let before = core.queued.fetch_add(rows, Ordering::AcqRel);
        if before > 0 && before + rows > core.config.queue_capacity {
            core.queued.fetch_sub(rows, Ordering::AcqRel);
            return Err(EngineError::Overloaded(format!(
                "{before} rows are already waiting for this model (its queue takes {}); retry shortly",
                core.config.queue_capacity
            )));
        }
        if self.runs_inline(rows) {
            core.push(job);
            return Ok(());
        }
        core.send(job)
    }

    /// Whether a request of `rows` runs on the network thread (see
    /// [`ModelConfig::inline_budget`]).
    fn runs_inline(&self, rows: usize) -> bool {
        let c = &self.core.config;
        let most = c.max_batch_size.max(1);
        // A request larger than a batch runs alone, and the hop is small beside its compute;
        // on the network thread it would hold the answers of every request read with it.
        !c.inline_budget.is_zero()
            && c.max_queue_delay.is_zero()
            && rows <= most
            && self.batches.fits(most, c.inline_budget)
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
    }

    /// Admits a request before it is decoded, counting its rows (guessed from the last request
    /// until [`Admission::set_rows`]) as in flight until the guard drops. Refused at once when
    /// the rows already admitted and not answered (being decoded, queued or running) and this
    /// one would pass the queue's capacity: this bounds the work inside the server, so the
    /// requests it accepts are answered promptly even when it is offered far more.
    pub fn admit(&self) -> Result<Admission<'_>, EngineError> {
        let rows = self.last_rows.load(Ordering::Relaxed).max(1);
        let before = self.in_flight.fetch_add(rows, Ordering::AcqRel);
        if before > 0 && before + rows > self.core.config.queue_capacity {
            self.in_flight.fetch_sub(rows, Ordering::AcqRel);
            return Err(EngineError::Overloaded(format!(
                "{before} rows are already in hand for this model (it takes {}); retry shortly",
                self.core.config.queue_capacity
            )));
        }
        Ok(Admission {
            scheduler: self,
            rows,
        })
    }

    /// Lets the workers finish what is queued for them, then waits for them to stop; requests
    /// still queued for the network thread are answered `Unavailable`.
    pub fn stop(&self) {
        self.closed.store(true, Ordering::Release);
        let handles: Vec<JoinHandle<()>> = self
            .workers
            .lock()
            .map(|mut w| w.drain(..).collect())
            .unwrap_or_default();
        for _ in &handles {
            let _ = self.core.tx.send(Msg::Stop);
        }
        for h in handles {
            let _ = h.join();
        }
        // What was queued for the network thread and not yet run (its runtime is going).
        self.core.abandon("the server is shutting down");
        while let Ok(msg) = self.rx.try_recv() {
            if let Msg::Job(j) = msg {
                let _ = j.reply.send(Err(EngineError::Unavailable(
                    "the server is shutting down".into(),
                )));
            }
        }
    }
}

/// A request admitted by [`Scheduler::admit`]; its rows count as in flight until dropped.
pub struct Admission<'a> {
    scheduler: &'a Scheduler,
    rows: usize,
}

impl Admission<'_> {
    /// The request's real row count, once decoded.
    pub fn set_rows(&mut self, rows: usize) {
        let f = &self.scheduler.in_flight;
        if rows > self.rows {
            f.fetch_add(rows - self.rows, Ordering::AcqRel);
        } else {
            f.fetch_sub(self.rows - rows, Ordering::AcqRel);
        }
        self.rows = rows;
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.scheduler
            .in_flight
            .fetch_sub(self.rows, Ordering::AcqRel);
    }
}

/// Rows and merge key of a request: mergeable when every input's first dimension is the
/// signature's variable batch dimension and all inputs agree on the row count.
fn batch_key(signature: &Signature, inputs: &[Tensor]) -> (usize, Option<Vec<Vec<usize>>>) {
    let rows = inputs.first().and_then(|t| t.shape.first().copied());
    let Some(rows) = rows else {
        return (1, None);
    };
    let mut key = Vec::with_capacity(signature.inputs.len());
    for (i, spec) in signature.inputs.iter().enumerate() {
        let found = inputs.get(i).filter(|t| t.name == spec.name);
        let Some(t) = found.or_else(|| inputs.iter().find(|t| t.name == spec.name)) else {
            return (rows, None);
        };
        if spec.shape.first() != Some(&-1) || t.shape.first() != Some(&rows) {
            return (rows, None);
        }
        key.push(t.shape[1..].to_vec());
    }
    (rows, Some(key))
}

/// A worker: take a request, gather what may join it, run, answer; until stopped or the
/// queue is gone.
fn work(
    rx: &Receiver<Msg>,
    queued: &AtomicUsize,
    model: &dyn Model,
    config: &ModelConfig,
    stats: &BatchStats,
) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(Msg::Job(j)) => {
                    queued.fetch_sub(j.rows, Ordering::AcqRel);
                    j
                }
                Ok(Msg::Stop) | Err(_) => return,
            },
        };
        let mut batch = vec![first];
        let mut rows = batch[0].rows;
        let mut stop = false;
        if batch[0].key.is_some() {
            let deadline = batch[0].enqueued + config.max_queue_delay;
            while rows < config.max_batch_size && !config.preferred_batch_sizes.contains(&rows) {
                let wait = deadline.saturating_duration_since(Instant::now());
                let got = if wait.is_zero() {
                    rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
                } else {
                    rx.recv_timeout(wait)
                };
                match got {
                    Ok(Msg::Job(j)) => {
                        queued.fetch_sub(j.rows, Ordering::AcqRel);
                        if j.key.is_some()
                            && j.key == batch[0].key
                            && rows + j.rows <= config.max_batch_size
                        {
                            rows += j.rows;
                            batch.push(j);
                        } else {
                            next = Some(j);
                            break;
                        }
                    }
                    Ok(Msg::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        run(model, batch, rows, stats, false);
        if stop {
            if let Some(j) = next.take() {
                let r = j.rows;
                run(model, vec![j], r, stats, false);
            }
            return;
        }
    }
}

/// Runs one batch and answers each of its requests, on the network thread or a worker.
fn run(model: &dyn Model, mut batch: Vec<Job>, rows: usize, stats: &BatchStats, on_network: bool) {
    let started = Instant::now();
    if batch.len() == 1 {
        let job = batch.pop().expect("one job");
        let out = guarded(model, &job.inputs);
        let compute = started.elapsed();
        stats.record(rows, 1, compute, on_network);
        let timing = Timing {
            queue: started - job.enqueued,
            compute,
            batch_rows: rows,
        };
        let _ = job.reply.send(out.map(|o| (o, timing)));
        return;
    }
    let merged = merge(&batch);
    let outputs = guarded(model, &merged).ok();
    let compute = started.elapsed();
    let sizes: Vec<usize> = batch.iter().map(|j| j.rows).collect();
    match outputs.and_then(|o| split(o, &sizes)) {
        Some(parts) => {
            stats.record(rows, batch.len(), compute, on_network);
            for (job, out) in batch.into_iter().zip(parts) {
                let timing = Timing {
                    queue: started - job.enqueued,
                    compute,
                    batch_rows: rows,
                };
                let _ = job.reply.send(Ok((out, timing)));
            }
        }
        // The batch failed, or its answers cannot be split by row: each request alone.
        None => {
            for job in batch {
                let r = job.rows;
                run(model, vec![job], r, stats, on_network);
            }
        }
    }
}

/// Runs the model, turning a panic in it into an error for these requests alone: neither a
/// worker thread nor the network thread dies with it, and the next request is served.
fn guarded(model: &dyn Model, inputs: &[Tensor]) -> Result<Vec<Tensor>, EngineError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.infer(inputs))) {
        Ok(out) => out.map_err(|e| EngineError::InvalidInput(e.to_string())),
        Err(_) => Err(EngineError::Internal(
            "the model failed unexpectedly on this request (a bug in the model; the server keeps serving)".into(),
        )),
    }
}

/// The batch's inputs, each the requests' rows one after another.
fn merge(batch: &[Job]) -> Vec<Tensor> {
    batch[0]
        .inputs
        .iter()
        .enumerate()
        .map(|(i, first)| {
            let parts: Vec<&Tensor> = batch
                .iter()
                .filter_map(|j| {
                    let same = j.inputs.get(i).filter(|t| t.name == first.name);
                    same.or_else(|| j.inputs.iter().find(|t| t.name == first.name))
                })
                .collect();
            let rows: usize = parts.iter().map(|t| t.shape[0]).sum();
            let mut shape = first.shape.clone();
            shape[0] = rows;
            Tensor {
                name: first.name.clone(),
                shape,
                data: concat(&parts),
            }
        })
        .collect()
}

fn concat(parts: &[&Tensor]) -> TensorData {
    let total: usize = parts.iter().map(|t| t.data.len()).sum();
    macro_rules! join {
        ($variant:ident) => {{
            let mut out = Vec::with_capacity(total);
            for p in parts {
                if let TensorData::$variant(v) = &p.data {
                    out.extend_from_slice(v);
                }
            }
            TensorData::$variant(out)
        }};
    }
    match &parts[0].data {
        TensorData::Bool(_) => join!(Bool),
        TensorData::Int64(_) => join!(Int64),
        TensorData::Fp32(_) => join!(Fp32),
        TensorData::Fp64(_) => join!(Fp64),
        TensorData::Bytes(_) => join!(Bytes),
    }
}

/// Splits a batch's outputs back into each request's rows, or `None` when an output is not
/// one row per input row.
fn split(outputs: Vec<Tensor>, sizes: &[usize]) -> Option<Vec<Vec<Tensor>>> {
    let total: usize = sizes.iter().sum();
    let mut per_job: Vec<Vec<Tensor>> = sizes.iter().map(|_| Vec::new()).collect();
    for t in outputs {
        if t.shape.first() != Some(&total) || total == 0 {
            return None;
        }
        let per_row = t.data.len() / total;
        if per_row * total != t.data.len() {
            return None;
        }
        let mut start = 0;
        for (k, &n) in sizes.iter().enumerate() {
            let range = start * per_row..(start + n) * per_row;
            start += n;
            let data = match &t.data {
                TensorData::Bool(v) => TensorData::Bool(v[range].to_vec()),
                TensorData::Int64(v) => TensorData::Int64(v[range].to_vec()),
                TensorData::Fp32(v) => TensorData::Fp32(v[range].to_vec()),
                TensorData::Fp64(v) => TensorData::Fp64(v[range].to_vec()),
                TensorData::Bytes(v) => TensorData::Bytes(v[range].to_vec()),
            };
            let mut shape = t.shape.clone();
            shape[0] = n;
            per_job[k].push(Tensor {
                name: t.name.clone(),
                shape,
                data,
            });
        }
    }
    Some(per_job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_refuse_nonsense() {
        let mut c = ModelConfig::default();
        c.apply("instances=3, max_batch_size=32,max_queue_delay_us=500,preferred_batch_sizes=8|16,queue_capacity=10,inline_budget_us=0")
            .unwrap();
        assert!(c.inline_budget.is_zero());
        assert_eq!(c.instances, 3);
        assert_eq!(c.max_batch_size, 32);
        assert_eq!(c.max_queue_delay, Duration::from_micros(500));
        assert_eq!(c.preferred_batch_sizes, vec![8, 16]);
        assert_eq!(c.queue_capacity, 10);
        c.apply("batching=off").unwrap();
        assert!(!c.batching());
        assert!(
            c.apply("max_batch=3")
                .unwrap_err()
                .contains("unknown setting")
        );
        assert!(c.apply("instances=x").unwrap_err().contains("whole number"));
        assert!(c.apply("instances").unwrap_err().contains("KEY=VALUE"));
    }

    #[test]
    fn the_estimate_counts_fixed_costs_and_costs_per_row() {
        let budget = Duration::from_micros(500);
        let stats = BatchStats::default();
        // Not measured: nothing fits, not even an empty request.
        assert!(!stats.fits(0, budget) && !stats.fits(1, budget));
        // 100,000 rows in 50 ms: 0.5 µs a row, but 50 ms an execution.
        stats.record(100_000, 1, Duration::from_millis(50), false);
        assert!(!stats.fits(1, budget));
        let quick = BatchStats::default();
        quick.record(1, 1, Duration::from_micros(4), true);
        assert!(quick.fits(64, budget));
        assert!(!quick.fits(200, budget), "200 rows at 4 µs is 800 µs");
        // One execution five times slower moves the average by an eighth of the difference
        // (4 → 6 µs a row), not all the way (64 rows at 20 µs would be 1.3 ms).
        quick.record(1, 1, Duration::from_micros(20), true);
        assert!(quick.fits(64, budget));
        assert_eq!(quick.inline.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn split_undoes_merge() {
        let t = |name: &str, rows: usize, base: f64| Tensor {
            name: name.into(),
            shape: vec![rows, 2],
            data: TensorData::Fp64((0..rows * 2).map(|i| base + i as f64).collect()),
        };
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let (tx2, _rx2) = tokio::sync::oneshot::channel();
        let jobs = vec![
            Job {
                inputs: vec![t("x", 2, 0.0)],
                rows: 2,
                key: Some(vec![vec![2]]),
                enqueued: Instant::now(),
                reply: tx,
            },
            Job {
                inputs: vec![t("x", 3, 100.0)],
                rows: 3,
                key: Some(vec![vec![2]]),
                enqueued: Instant::now(),
                reply: tx2,
            },
        ];
        let merged = merge(&jobs);
        assert_eq!(merged[0].shape, vec![5, 2]);
        let parts = split(merged, &[2, 3]).unwrap();
        assert_eq!(parts[0][0], t("x", 2, 0.0));
        assert_eq!(parts[1][0], t("x", 3, 100.0));
        // An output that is not one row per input row cannot be split.
        let odd = vec![Tensor::vector("s", TensorData::Fp64(vec![1.0]))];
        assert!(split(odd, &[2, 3]).is_none());
    }
}
