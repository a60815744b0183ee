//! The Open Inference Protocol v2 REST codec: inference requests in JSON (flat or nested data)
//! and in the binary tensor data extension, and responses in either form.
//!
//! One file per job, each saying what it owns and the measurement behind it:
//!
//! | file | owns |
//! | --- | --- |
//! | `datatype.rs` | wire datatype names, held types, integer ranges, half-float rounding |
//! | `number.rs` | the one-pass JSON number scanner (Clinger's fast path) |
//! | `sink.rs` | typed sinks for JSON `data`, the serde visitor for the rest |
//! | `binary.rs` | the binary tensor data extension, both ways |
//! | `conform.rs` | exact conversion of decoded inputs to the model's types |
//! | `request.rs` | `/infer` bodies: header, admission by row count, inputs, requested outputs |
//! | `fast.rs` | the one-pass reader for the usual request header |
//! | `response.rs` | response bodies, JSON and binary |
//!
//! The public API is re-exported here; the files share their items with each other as
//! `pub(super)`, each imported from the file that owns it.

// Every match over a datatype or a JSON value lists its variants, whatever the crate allows.
#![warn(clippy::wildcard_enum_match_arm)]

mod binary;
mod conform;
mod datatype;
mod fast;
mod number;
mod request;
mod response;
mod sink;

pub use binary::{binary_block, binary_data};
pub use conform::{conform, converts_to};
pub use datatype::{datatype, held, narrow};
pub use request::{
    InferRequest, Requested, element_count, parse_request, parse_request_serde, shape_of,
    takes_fast_path,
};
pub use response::{Encoded, encode_response};

/// A bad request, with the text the client sees in `{"error": …}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad<T>(m: impl Into<String>) -> Result<T, BadRequest> {
    Err(BadRequest(m.into()))
}

/// The admission callback that admits every request, for tests.
#[cfg(test)]
fn admit_all(_: usize) -> Result<(), BadRequest> {
    Ok(())
}
