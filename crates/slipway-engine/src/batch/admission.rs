//! Admission: the rows a model has in hand (admitted by a front door and not yet answered)
//! never pass its `queue_capacity`. A request is admitted before its body is read and claims
//! its real row count before its data is decoded, so a refused request costs no decoding and
//! an admitted one can allocate only for rows it holds.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::EngineError;

/// A request admitted by [`Scheduler::admit`](super::Scheduler::admit); the rows it has
/// claimed count as in hand until it is dropped.
#[derive(Debug)]
pub struct Admission<'a> {
    in_flight: &'a AtomicUsize,
    capacity: usize,
    rows: usize,
}

impl<'a> Admission<'a> {
    pub(super) fn new(in_flight: &'a AtomicUsize, capacity: usize) -> Self {
        Admission {
            in_flight,
            capacity,
            rows: 0,
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
            if now + more > self.capacity {
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
