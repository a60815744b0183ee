//! The model's worker threads: each takes a request, gathers what may join it, runs the batch
//! and answers each request with its own rows. A batch that fails is rerun request by request,
//! so one request's bad values never fail its batch-mates; a model's panic fails only the
//! request that caused it.

use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use slipway_core::{Model, Tensor};

use super::merge::{merge, split};
use super::{BatchStats, Job, ModelConfig, Msg};
use crate::{EngineError, Timing};

/// A worker: take a request, gather what may join it, run, answer; until stopped or the
/// queue is gone.
pub(super) fn work(
    rx: &Receiver<Msg>,
    model: &dyn Model,
    config: &ModelConfig,
    stats: &BatchStats,
) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(Msg::Job(j)) => j,
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
pub(super) fn run(
    model: &dyn Model,
    mut batch: Vec<Job>,
    rows: usize,
    stats: &BatchStats,
    on_network: bool,
) {
    // A request whose caller has gone (a client that disconnected, a gRPC deadline) is not
    // run; its rows are given back as its job drops.
    let before = batch.len();
    batch.retain(|j| !j.reply.is_closed());
    if batch.is_empty() {
        return;
    }
    let rows = if batch.len() == before {
        rows
    } else {
        batch.iter().map(|j| j.rows).sum()
    };
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
        // The request already matched the signature: a model that still fails on it has
        // failed, which is not the caller's to read about (the front door logs the detail).
        Ok(out) => out.map_err(|e| EngineError::Internal(format!("the model failed: {e}"))),
        Err(_) => Err(EngineError::Internal(
            "the model failed unexpectedly on this request (a bug in the model; the server keeps serving)".into(),
        )),
    }
}
