//! One model's scheduler: admission by rows in hand, a queue, and the model's own worker
//! threads (its instances), which merge requests that are waiting together into one batch,
//! run it, and split the answers back (`worker`, `merge`). On a single-threaded runtime a quick
//! model's batches run on the network thread instead (`inline`). A request whose inputs cannot
//! be merged runs alone; when a merged batch fails, each of its requests is run alone, so one
//! request's bad values never fail its batch-mates.
//!
//! One admission story: a front door calls [`Scheduler::admit`] before it parses a body (a full
//! model refuses at once, costing no parsing), then [`Admission::claim`]s the request's real
//! row count as soon as it is known and before the request's data is decoded. Only admitted
//! rows reach the queue, so the rows in hand never pass `queue_capacity`, whatever the sizes
//! and timing of the requests.

mod admission;
mod config;
mod inline;
mod merge;
mod stats;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

pub use admission::Admission;
pub(crate) use admission::Held;
pub use config::ModelConfig;
use crossbeam_channel::Receiver;
use inline::Core;
pub(crate) use merge::batch_key;
use slipway_core::{Model, Signature, Tensor};
pub use stats::BatchStats;

use crate::{EngineError, Timing};

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
    /// The request's admitted rows, given back once it is answered.
    _held: Held,
}

enum Msg {
    Job(Job),
    Stop,
}

/// The queue and the workers of one served version.
pub struct Scheduler {
    core: Arc<Core>,
    /// Rows admitted by a front door and not yet answered (decoding, queued or running).
    in_flight: Arc<AtomicUsize>,
    /// Kept to answer whatever is still queued once the workers have stopped.
    rx: Receiver<Msg>,
    closed: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
    pub batches: Arc<BatchStats>,
}

type Spawn = (
    String,
    Box<dyn FnOnce() + Send>,
    std::sync::mpsc::Sender<std::io::Result<JoinHandle<()>>>,
);

/// Spawns a model's worker thread from one long-lived thread, started with the first model, so
/// that every worker takes that thread's scheduling priority and not its caller's. A server's
/// network threads lower their own priority (`slipway_server::network_runtime`), so that under
/// overload the threads refusing requests yield the core to the model; a model loaded later,
/// from a request or the registry watcher, must not inherit that lower priority.
fn spawn_worker(name: String, work: Box<dyn FnOnce() + Send>) -> std::io::Result<JoinHandle<()>> {
    static SPAWNER: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Spawn>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Spawn>();
        // Should this thread not start, `rx` is dropped and every caller spawns its own.
        let _ = std::thread::Builder::new()
            .name("slipway-spawn".into())
            .spawn(move || {
                for (name, work, reply) in rx {
                    let _ = reply.send(std::thread::Builder::new().name(name).spawn(work));
                }
            });
        Mutex::new(tx)
    });
    let (reply, answer) = std::sync::mpsc::channel();
    let sent = match spawner.lock() {
        Ok(tx) => tx.send((name, work, reply)).map_err(|e| e.0),
        Err(_) => Err((name, work, reply)),
    };
    match sent {
        Ok(()) => answer
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the worker spawner stopped"))),
        Err((name, work, _)) => std::thread::Builder::new().name(name).spawn(work),
    }
}

impl Scheduler {
    /// Starts `config.instances` workers for `model`, named after it.
    pub fn start(name: &str, model: Arc<dyn Model>, config: ModelConfig) -> Scheduler {
        // Unbounded: admission bounds it, by rows.
        let (tx, rx) = crossbeam_channel::unbounded();
        let batches = Arc::new(BatchStats::default());
        let workers = (0..config.instances.max(1))
            .map(|i| {
                let rx = rx.clone();
                let model = Arc::clone(&model);
                let config = config.clone();
                let batches = Arc::clone(&batches);
                let short: String = name.chars().take(8).collect();
                spawn_worker(
                    format!("infer-{short}-{i}"),
                    Box::new(move || worker::work(&rx, model.as_ref(), &config, &batches)),
                )
                .expect("spawning an inference thread")
            })
            .collect();
        Scheduler {
            core: Arc::new(Core {
                tx,
                model,
                config,
                stats: Arc::clone(&batches),
                waiting: Mutex::default(),
            }),
            in_flight: Arc::new(AtomicUsize::new(0)),
            rx,
            closed: AtomicBool::new(false),
            workers: Mutex::new(workers),
            batches,
        }
    }

    /// The settings this model runs with.
    pub fn config(&self) -> &ModelConfig {
        &self.core.config
    }

    /// Rows admitted and not yet answered (being decoded, queued or running).
    pub fn in_hand(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Admits a request before its body is parsed: refused at once (`Overloaded`) when the
    /// model already has `queue_capacity` rows in hand, so shedding costs no parsing. The
    /// request holds no rows until it [`claim`](Admission::claim)s its real count.
    pub fn admit(&self) -> Result<Admission<'_>, EngineError> {
        let capacity = self.core.config.queue_capacity;
        let now = self.in_flight.load(Ordering::Acquire);
        if now >= capacity {
            return Err(EngineError::Overloaded(format!(
                "{now} rows are already in hand for this model (it takes {capacity}); retry shortly"
            )));
        }
        Ok(Admission::new(&self.in_flight, capacity))
    }

    /// Queues a checked request whose rows `admission` holds.
    pub(crate) fn submit(
        &self,
        signature: &Signature,
        inputs: Vec<Tensor>,
        admission: &mut Admission<'_>,
        reply: Reply,
    ) -> Result<(), EngineError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        let (rows, key) = batch_key(signature, &inputs);
        if rows.max(1) > admission.rows() || !std::ptr::eq(admission.counter(), &*self.in_flight) {
            return Err(EngineError::Internal(format!(
                "a request of {rows} rows was submitted with an admission for {} rows of another model or fewer rows",
                admission.rows()
            )));
        }
        let job = Job {
            inputs,
            rows,
            key: key.filter(|_| self.core.config.batching()),
            enqueued: Instant::now(),
            reply,
            _held: admission.hand_over(),
        };
        if self.runs_inline(rows) {
            self.core.push(job);
            return Ok(());
        }
        let alone = job.key.is_none() || rows > self.core.config.max_batch_size.max(1);
        self.core.send(job)?;
        if alone && on_one_thread() {
            // A job that runs alone gains nothing from waiting for others, and its worker shares
            // this core: without a yield it waits out this thread's time slice (the kernel does
            // not preempt at wake-up), and the rows it holds make the model refuse requests it
            // has time for (1.3 ms of queue for 25 µs of model; 57-67 % goodput under overload,
            // bench/goodput.py). Jobs that can merge are left to gather: yielding for them ran
            // each alone (a wide MLP's single-row throughput fell 9×, bench/serve.sh).
            std::thread::yield_now();
        }
        Ok(())
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
            && on_one_thread()
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

/// Whether the caller runs on a single-threaded tokio runtime (`slipway serve` on one core).
fn on_one_thread() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}
