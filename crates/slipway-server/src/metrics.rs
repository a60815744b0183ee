//! Prometheus metrics: requests by model, version, protocol and outcome; latency histograms
//! (queue, compute, total); rows per request; requests in flight; the models loaded; and the
//! process's own figures. Rendered at `GET /metrics` in the OpenMetrics text format.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use slipway_engine::{Engine, Served};

type Labels = Vec<(&'static str, String)>;

/// A histogram whose observations are atomic adds, so recording one takes no lock
/// (prometheus-client's own takes a write lock per observation).
#[derive(Clone, Debug)]
pub struct AtomicHistogram(Arc<HistogramCells>);

#[derive(Debug)]
struct HistogramCells {
    /// Upper bounds, the last `f64::MAX` (+Inf).
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let mut bounds: Vec<f64> = bounds.into_iter().collect();
        bounds.push(f64::MAX);
        let counts = bounds.iter().map(|_| AtomicU64::new(0)).collect();
        AtomicHistogram(Arc::new(HistogramCells {
            bounds,
            counts,
            sum_bits: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, v: f64) {
        let c = &self.0;
        let i = c
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(c.bounds.len() - 1);
        c.counts[i].fetch_add(1, Relaxed);
        c.count.fetch_add(1, Relaxed);
        let mut current = c.sum_bits.load(Relaxed);
        loop {
            let next = (f64::from_bits(current) + v).to_bits();
            match c
                .sum_bits
                .compare_exchange_weak(current, next, Relaxed, Relaxed)
            {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.0;
        let buckets: Vec<(f64, u64)> = c
            .bounds
            .iter()
            .zip(&c.counts)
            .map(|(&b, n)| (b, n.load(Relaxed)))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            f64::from_bits(c.sum_bits.load(Relaxed)),
            c.count.load(Relaxed),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

type Histogram = AtomicHistogram;

fn latency() -> Histogram {
    // 10 µs to ~5 s.
    AtomicHistogram::new(exponential_buckets(1e-5, 2.0, 20))
}

fn rows() -> Histogram {
    AtomicHistogram::new(exponential_buckets(1.0, 2.0, 14))
}

const PROTOCOLS: [&str; 3] = ["rest_v2", "rest_v1", "grpc"];
const OUTCOMES: [&str; 7] = [
    "ok",
    "invalid",
    "not_found",
    "unavailable",
    "overloaded",
    "error",
    "too_large",
];

/// One served version's metric handles, made on its first request and kept on the version
/// (`Served::front_door`), so recording a request looks nothing up and takes no lock.
struct Handles {
    owner: u64,
    /// By protocol, then outcome; each made on first use, so unused series stay absent.
    requests: [[std::sync::OnceLock<Counter>; 7]; 3],
    total: [std::sync::OnceLock<Histogram>; 3],
    queue: Histogram,
    compute: Histogram,
    rows: Histogram,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    total: Family<Labels, Histogram, fn() -> Histogram>,
    queue: Family<Labels, Histogram, fn() -> Histogram>,
    compute: Family<Labels, Histogram, fn() -> Histogram>,
    rows: Family<Labels, Histogram, fn() -> Histogram>,
    in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
    models: Family<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    auth_refused: Family<Labels, Counter>,
    _start: Gauge<f64, AtomicU64>,
    /// Held while a scrape rebuilds `models` and encodes, so two scrapes at once never see
    /// each other's half-built list (scrapes only; no request takes it).
    scrape: std::sync::Mutex<()>,
    /// Tells this registry's handles from another's kept on the same version.
    id: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("slipway");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Inference requests by model, version, protocol and outcome",
            requests.clone(),
        );
        let total = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        registry.register(
            "request_duration_seconds",
            "Time from request to response, by model and protocol",
            total.clone(),
        );
        let queue = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        registry.register(
            "queue_duration_seconds",
            "Time a request waited for an inference worker",
            queue.clone(),
        );
        let compute = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        registry.register(
            "compute_duration_seconds",
            "Time the model took",
            compute.clone(),
        );
        let rows_family =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(rows);
        registry.register(
            "batch_rows",
            "Rows of the batch each request ran in (requests merged by dynamic batching count together)",
            rows_family.clone(),
        );
        let in_flight = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        registry.register(
            "in_flight_requests",
            "Inference requests being answered",
            in_flight.clone(),
        );
        let models = Family::<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>::default();
        registry.register(
            "model_loaded",
            "1 for each model version loaded, with its platform",
            models.clone(),
        );
        let auth_refused = Family::<Labels, Counter>::default();
        registry.register(
            "auth_refused",
            "Calls refused by the API-key check, by reason (unauthenticated, forbidden, not_found: a model outside the key's scope)",
            auth_refused.clone(),
        );
        let start = Gauge::<f64, AtomicU64>::default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        start.set(now);
        registry.register(
            "process_start_time_seconds",
            "When the server started, in seconds since the epoch",
            start.clone(),
        );
        Metrics {
            registry,
            requests,
            total,
            queue,
            compute,
            rows: rows_family,
            in_flight,
            models,
            auth_refused,
            _start: start,
            scrape: std::sync::Mutex::new(()),
            id: {
                static NEXT: AtomicU64 = AtomicU64::new(1);
                NEXT.fetch_add(1, Relaxed)
            },
        }
    }

    fn handles(&self, served: &Served) -> Handles {
        let by_model: Labels = vec![("model", served.name.clone())];
        Handles {
            owner: self.id,
            requests: Default::default(),
            total: Default::default(),
            queue: self.queue.get_or_create(&by_model).clone(),
            compute: self.compute.get_or_create(&by_model).clone(),
            rows: self.rows.get_or_create(&by_model).clone(),
        }
    }

    /// Counts a call the key check refused, by the error's `code` (never the token).
    pub fn auth_refused(&self, reason: &'static str) {
        self.auth_refused
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// Inference requests being answered now.
    pub fn in_flight_now(&self) -> i64 {
        self.in_flight.get()
    }

    /// Counts a request in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(self)
    }

    /// Records one answered (or refused) request to `served`.
    pub fn record(
        &self,
        served: &Served,
        protocol: &'static str,
        outcome: &'static str,
        total: Duration,
        engine: Option<(Duration, Duration)>,
        rows: Option<usize>,
    ) {
        let slot = served
            .front_door
            .get_or_init(|| Box::new(self.handles(served)));
        let own;
        let h = match slot.downcast_ref::<Handles>() {
            Some(h) if h.owner == self.id => h,
            // Another registry's handles (two servers over one engine): make ours for this call.
            Some(_) | None => {
                own = self.handles(served);
                &own
            }
        };
        let p = PROTOCOLS.iter().position(|&x| x == protocol).unwrap_or(0);
        let o = OUTCOMES.iter().position(|&x| x == outcome).unwrap_or(5);
        h.requests[p][o]
            .get_or_init(|| {
                let labels: Labels = vec![
                    ("model", served.name.clone()),
                    ("version", served.version.clone()),
                    ("protocol", PROTOCOLS[p].to_string()),
                    ("outcome", OUTCOMES[o].to_string()),
                ];
                self.requests.get_or_create(&labels).clone()
            })
            .inc();
        h.total[p]
            .get_or_init(|| {
                let labels: Labels = vec![
                    ("model", served.name.clone()),
                    ("protocol", PROTOCOLS[p].to_string()),
                ];
                self.total.get_or_create(&labels).clone()
            })
            .observe(total.as_secs_f64());
        if let Some((queue, compute)) = engine {
            h.queue.observe(queue.as_secs_f64());
            h.compute.observe(compute.as_secs_f64());
        }
        if let Some(n) = rows {
            h.rows.observe(n as f64);
        }
    }

    /// The text exposition, with the models loaded and the process's figures.
    pub fn render(&self, engine: &Engine) -> String {
        let _scrape = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.models.clear();
        for m in engine.models() {
            let labels: Labels = vec![
                ("model", m.name.clone()),
                ("version", m.version.clone()),
                ("platform", m.platform().to_string()),
            ];
            self.models.get_or_create(&labels).set(1);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            return String::from("# EOF\n");
        }
        // Model loads, and the process's figures from /proc, before the final `# EOF`.
        let loads = engine.loads.load(std::sync::atomic::Ordering::Relaxed);
        let failures = engine
            .load_failures
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut executions = String::from(
            "# HELP slipway_batch_executions Batches run, by the thread they ran on: network (a quick model on a one-core server) or worker (the model's own threads).\n# TYPE slipway_batch_executions counter\n",
        );
        for m in engine.models() {
            let b = &m.scheduler.batches;
            let total: u64 = b.snapshot().iter().map(|(_, n, _)| n).sum();
            let network = b.inline.load(Relaxed);
            for (thread, n) in [
                ("network", network),
                ("worker", total.saturating_sub(network)),
            ] {
                let _ = writeln!(
                    executions,
                    "slipway_batch_executions_total{{model=\"{}\",version=\"{}\",thread=\"{thread}\"}} {n}",
                    label(&m.name),
                    label(&m.version)
                );
            }
        }
        let process = format!(
            "{executions}# HELP slipway_model_loads Model versions put into service (initial loads and swaps).\n# TYPE slipway_model_loads counter\nslipway_model_loads_total {loads}\n\
             # HELP slipway_model_load_failures Model versions that failed to load.\n# TYPE slipway_model_load_failures counter\nslipway_model_load_failures_total {failures}\n{}",
            process_metrics()
        );
        if let Some(body) = out.strip_suffix("# EOF\n") {
            format!("{body}{process}# EOF\n")
        } else {
            out
        }
    }
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

fn process_metrics() -> String {
    let mut out = String::new();
    // Resident memory from /proc/self/statm (pages).
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm")
        && let Some(pages) = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u64>().ok())
    {
        out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n");
        out.push_str(&format!("process_resident_memory_bytes {}\n", pages * 4096));
    }
    // CPU time from /proc/self/stat (utime + stime, in clock ticks of 1/100 s).
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(rest) = stat.rsplit(')').next()
    {
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(u), Some(s)) = (
            fields.get(11).and_then(|v| v.parse::<f64>().ok()),
            fields.get(12).and_then(|v| v.parse::<f64>().ok()),
        ) {
            out.push_str("# HELP process_cpu_seconds_total Total user and system CPU time in seconds.\n# TYPE process_cpu_seconds_total counter\n");
            out.push_str(&format!("process_cpu_seconds_total {}\n", (u + s) / 100.0));
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.push_str(
            "# HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\n",
        );
        out.push_str(&format!("process_open_fds {}\n", fds.count()));
    }
    out
}
