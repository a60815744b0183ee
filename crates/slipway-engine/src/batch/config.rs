//! How one model is scheduled: Triton's and MLServer's dynamic batching settings, plus the
//! rows a model may have in hand and when its batches may run on the network thread.

use std::time::Duration;

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
    /// Rows this model may have in hand: admitted by a front door and not yet answered
    /// (being decoded, queued or running). The queue is bounded by work, not by requests:
    /// 2,048 single-row requests, or 8 of 256 rows. A request is counted by its real row
    /// count, read before its data is decoded; one that would pass the capacity is refused at
    /// once (`Overloaded`, 503), and one with more rows than the capacity can never fit
    /// (`TooLarge`, 413: split it, or raise this).
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
}
