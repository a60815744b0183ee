//! Executions by batch size (Triton's `batch_stats`) and the moving averages of compute that
//! decide whether a batch may run on the network thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    pub(super) fn fits(&self, rows: usize, budget: Duration) -> bool {
        let budget = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        let per_row = self.ns_per_row.load(Ordering::Relaxed);
        let per_execution = self.ns_per_execution.load(Ordering::Relaxed);
        per_execution <= budget && per_row.saturating_mul(rows.max(1) as u64) <= budget
    }

    pub(super) fn record(&self, rows: usize, requests: usize, compute: Duration, on_network: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
