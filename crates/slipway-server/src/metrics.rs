//! Prometheus metrics: requests by model, version, protocol and outcome; latency histograms
//! (queue, compute, total); rows per request; requests in flight; the models loaded; and the
//! process's own figures. Rendered at `GET /metrics` in the OpenMetrics text format.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use slipway_engine::Engine;

type Labels = Vec<(&'static str, String)>;

fn latency() -> Histogram {
    // 10 µs to ~5 s.
    Histogram::new(exponential_buckets(1e-5, 2.0, 20))
}

fn rows() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
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
    _start: Gauge<f64, AtomicU64>,
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
            _start: start,
        }
    }

    /// Counts a request in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(self)
    }

    /// Records one answered (or refused) request.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        model: &str,
        version: &str,
        protocol: &'static str,
        outcome: &'static str,
        total: Duration,
        engine: Option<(Duration, Duration)>,
        rows: Option<usize>,
    ) {
        let labels: Labels = vec![
            ("model", model.to_string()),
            ("version", version.to_string()),
            ("protocol", protocol.to_string()),
            ("outcome", outcome.to_string()),
        ];
        self.requests.get_or_create(&labels).inc();
        let short: Labels = vec![
            ("model", model.to_string()),
            ("protocol", protocol.to_string()),
        ];
        self.total
            .get_or_create(&short)
            .observe(total.as_secs_f64());
        let by_model: Labels = vec![("model", model.to_string())];
        if let Some((queue, compute)) = engine {
            self.queue
                .get_or_create(&by_model)
                .observe(queue.as_secs_f64());
            self.compute
                .get_or_create(&by_model)
                .observe(compute.as_secs_f64());
        }
        if let Some(n) = rows {
            self.rows.get_or_create(&by_model).observe(n as f64);
        }
    }

    /// The text exposition, with the models loaded and the process's figures.
    pub fn render(&self, engine: &Engine) -> String {
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
        let process = format!(
            "# HELP slipway_model_loads Model versions put into service (initial loads and swaps).\n# TYPE slipway_model_loads counter\nslipway_model_loads_total {loads}\n\
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
