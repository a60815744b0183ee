//! Slipway's contract crate: the types every other crate agrees on.
//!
//! - [`tensor`]: datatypes, shapes and tensor buffers (the Open Inference Protocol v2 names).
//! - [`manifest`]: the model package manifest (`slipway.json`) and its parts.
//! - [`Model`]: what a loaded model can do, whatever trained it.
//!
//! No I/O and no async live here.

pub mod manifest;
pub mod tensor;

pub use manifest::{
    Activation, FeatureKind, FeatureSpec, Framework, Lineage, Manifest, ModelSpec, OnnxSpec,
    TargetSpec, Task,
};
pub use tensor::{DataType, Family, Signature, Tensor, TensorData, TensorSpec};

/// Errors of the contract types.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The package manifest could not be read or does not describe a valid package.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A manifest written by a newer Slipway.
    #[error(
        "package format version {found} is newer than this slipway understands ({supported}); upgrade slipway"
    )]
    UnsupportedFormat { found: u32, supported: u32 },
    /// An input does not match the model's signature.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// A loaded model, ready to answer requests: native packages and imported models alike.
///
/// Implementations are `Send + Sync` so one loaded model can serve many threads.
pub trait Model: Send + Sync {
    /// Names, datatypes and shapes of the inputs the model takes and the outputs it gives.
    fn signature(&self) -> &Signature;

    /// Runs the model on a batch. `inputs` follow the signature's inputs by name; the outputs
    /// come back in the signature's output order.
    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, CoreError>;
}

/// Text from a file or a client made safe to print: control characters (terminal escapes,
/// which could move a terminal's cursor or rewrite what was printed before) become
/// `\u{1b}`-style escapes.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
