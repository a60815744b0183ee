//! Slipway's training code: from a CSV to an evaluated, reproducible model package.
//!
//! The flow is [`data::read_csv`] → [`split::split`] → [`pipeline::Pipeline::fit`] →
//! an estimator ([`linear`], [`logistic`], [`mlp`]) → [`metrics`] → [`package::write`].
//! [`package::NativeModel`] loads a package back and scores rows.

pub mod metrics;
