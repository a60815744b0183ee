//! Slipway's training code: from a CSV to an evaluated, reproducible model package.
//!
//! The flow is [`data::read_csv`] → [`split::split`] → [`pipeline::Pipeline::fit`] →
//! an estimator ([`linear`], [`logistic`], [`mlp`]) → [`metrics`] → [`package::write`].
//! [`package::NativeModel`] loads a package back and scores rows.

pub mod data;
pub mod dataset;
pub mod error;
pub mod linear;
pub mod metrics;
pub mod mlp;
pub mod native;
pub mod nn;
pub mod optim;
pub mod package;
pub mod pipeline;
pub mod predict;
pub mod rng;
pub mod source;
pub mod split;
pub mod train;

pub use error::{LearnError, Result};
pub mod tune;
