//! Admission: the rows a model has in hand (admitted by a front door and not yet answered)
//! never pass its `queue_capacity`. A request is admitted before its body is read and claims
//! its real row count before its data is decoded, so a refused request costs no decoding and
//! an admitted one can allocate only for rows it holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::EngineError;

/// A request admitted by [`Scheduler::admit`](super::Scheduler::admit); the rows it has
/// claimed count as in hand until it is dropped.
///
/// Once the request is queued, its rows move to the queued job ([`Held`]) and are given back
/// when the job has been answered, so a caller that goes away (a client that disconnects, a
/// gRPC deadline) cannot free rows whose work is still queued.
#[derive(Debug)]
pub struct Admission<'a> {
    in_flight: &'a Arc<AtomicUsize>,
    capacity: usize,
    rows: usize,
}

/// Rows held by a queued job, given back when it is dropped (answered, or abandoned).
#[derive(Debug)]
pub(crate) struct Held {
    in_flight: Arc<AtomicUsize>,
    rows: usize,
}

impl Held {
    /// Rows held by nothing (for tests that build jobs by hand).
    #[cfg(test)]
    pub(crate) fn nothing() -> Held {
        Held {
            in_flight: Arc::new(AtomicUsize::new(0)),
            rows: 0,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.rows, Ordering::AcqRel);
    }
}

impl<'a> Admission<'a> {
    pub(super) fn new(in_flight: &'a Arc<AtomicUsize>, capacity: usize) -> Self {
        Admission {
            in_flight,
            capacity,
            rows: 0,
        }
    }

    /// Moves this request's rows to its queued job.
    pub(super) fn hand_over(&mut self) -> Held {
        Held {
            in_flight: Arc::clone(self.in_flight),
            rows: std::mem::take(&mut self.rows),
        }
    }

    /// Rows this request holds.
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub(super) fn counter(&self) -> &AtomicUsize {
        self.in_flight
    }

    /// Holds `rows` for this request (its real row count, or the rows read so far): refused
    /// with `TooLarge` when `rows` alone pass the model's capacity (the request can never fit:
    /// split it), and with `Overloaded` when the rows other requests hold leave no room now
    /// (retry shortly). Claiming again with the same count is free; a smaller count gives rows
    /// back.
    pub fn claim(&mut self, rows: usize) -> Result<(), EngineError> {
        if rows <= self.rows {
            self.in_flight.fetch_sub(self.rows - rows, Ordering::AcqRel);
            self.rows = rows;
            return Ok(());
        }
        if rows > self.capacity {
            return Err(EngineError::TooLarge(format!(
                "the request has {rows} rows; this model takes at most {} rows at a time (its queue_capacity): split the request, or raise queue_capacity",
                self.capacity
            )));
        }
        // Compare-and-swap rather than add-then-undo, so the count never passes the capacity,
        // not even for an instant (a front door reading it would refuse for nothing).
        let more = rows - self.rows;
        let mut now = self.in_flight.load(Ordering::Acquire);
        loop {
            if now
                .checked_add(more)
                .is_none_or(|total| total > self.capacity)
            {
                return Err(EngineError::Overloaded(format!(
                    "{} rows are already in hand for this model (it takes {}); retry shortly",
                    now - self.rows,
                    self.capacity
                )));
            }
            match self.in_flight.compare_exchange_weak(
                now,
                now + more,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => now = actual,
            }
        }
        self.rows = rows;
        Ok(())
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.rows, Ordering::AcqRel);
    }
}
