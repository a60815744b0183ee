//! The network thread's queue of one model. On a single-threaded runtime a quick model's
//! batches run on the runtime's thread (see [`ModelConfig::inline_budget`]): a request waits
//! here while the event loop reads the others that arrived with it, then one task, spawned
//! behind them, runs what has gathered as batches, exactly as a worker would.

use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use slipway_core::Model;

use super::worker::run;
use super::{BatchStats, Job, ModelConfig, Msg};
use crate::EngineError;

/// What a scheduler shares with the task that runs batches on a single-threaded network
/// runtime (see [`ModelConfig::inline_budget`]): the workers' channel, the model, its settings
/// and statistics, and the network thread's own queue, where requests wait
/// while the event loop reads the others that arrived with them; one task, spawned behind
/// them, then runs what has gathered.
pub(super) struct Core {
    pub(super) tx: Sender<Msg>,
    pub(super) model: Arc<dyn Model>,
    pub(super) config: ModelConfig,
    pub(super) stats: Arc<BatchStats>,
    pub(super) waiting: Mutex<InlineQueue>,
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
pub(super) struct InlineQueue {
    jobs: Vec<Job>,
    /// A task is on its way to run `jobs`.
    scheduled: bool,
}

impl Core {
    /// Queues `job`, and spawns the task that runs the queue unless one is already coming.
    pub(super) fn push(self: &Arc<Self>, job: Job) {
        let spawn = match self.waiting.lock() {
            Ok(mut q) => {
                q.jobs.push(job);
                !std::mem::replace(&mut q.scheduled, true)
            }
            Err(_) => {
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
    pub(super) fn abandon(&self, why: &str) {
        let left = match self.waiting.lock() {
            Ok(mut q) => {
                q.scheduled = false;
                std::mem::take(&mut q.jobs)
            }
            Err(_) => return,
        };
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
            // Should the workers be gone, the dropped reply answers the request `Unavailable`.
            let _ = self.send(job);
        }
    }

    /// Sends a job to the workers.
    pub(super) fn send(&self, job: Job) -> Result<(), EngineError> {
        self.tx
            .send(Msg::Job(job))
            .map_err(|_| EngineError::Unavailable("the model's workers have stopped".into()))
    }
}
