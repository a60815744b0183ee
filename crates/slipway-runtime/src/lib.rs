//! Runs any Slipway package: native packages (the code that trained them) and ONNX graphs
//! from PyTorch, scikit-learn, XGBoost or LightGBM.
//!
//! [`load`] reads a package folder, checks its payload digest, and returns the model behind
//! `Arc<dyn Model>`, planned and warmed. ONNX graphs run on Slipway's own interpreter when it
//! has every operator of the graph (the `ai.onnx.ml` domain and the standard operators tabular
//! models use) and on tract otherwise; see [`onnx`].
//!
//! Around it, what the CLI does with a package: [`evaluate`] any package on labelled data
//! (`eval`, `import --data`, `promote --must-beat`), [`predict_csv`] streams a CSV through any
//! package in chunks, and [`package_onnx`] turns an `.onnx` file into a package folder.

pub mod evaluate;
pub mod example;
pub mod import;
pub mod onnx;
pub mod predict;
pub mod tabular;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use slipway_core::{Framework, Manifest, Model};
use slipway_learn::package::{NativeModel, read_manifest};

pub use evaluate::{Evaluation, evaluate};
pub use import::{OnnxOptions, Packaged, package_onnx};
pub use onnx::{EngineChoice, OnnxError, OnnxInfo, OnnxModel, bounded_elements};
pub use predict::{ScoreOptions, predict_csv};
/// A native package's matrix input (`slipway train --input matrix`).
pub use slipway_learn::native::{MATRIX_INPUT, matrix_width};

/// Why a package does not load.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The package folder or its native payload is unusable.
    #[error(transparent)]
    Package(#[from] slipway_learn::LearnError),
    /// The ONNX payload does not load.
    #[error("{path}: {source}")]
    Onnx { path: PathBuf, source: OnnxError },
    /// The payload cannot be read or does not match its digest.
    #[error("{path}: {message}")]
    Payload { path: PathBuf, message: String },
}

/// A loaded package: its manifest and the model, ready to serve.
pub struct Loaded {
    pub manifest: Manifest,
    pub model: Arc<dyn Model>,
    /// For ONNX packages, what the graph holds and which engine runs it.
    pub onnx: Option<OnnxInfo>,
}

/// Loads a package folder.
pub fn load(dir: &Path) -> Result<Loaded, RuntimeError> {
    let manifest = read_manifest(dir)?;
    match manifest.framework {
        Framework::Native => {
            let model = NativeModel::load(dir)?;
            Ok(Loaded {
                manifest,
                model: Arc::new(model),
                onnx: None,
            })
        }
        Framework::Onnx => {
            let path = dir.join(&manifest.payload.file);
            let bytes = read_payload(&path, &manifest.payload.sha256)?;
            let model = OnnxModel::from_bytes_with_inputs(
                &bytes,
                EngineChoice::Auto,
                &manifest.signature.inputs,
            )
            .map_err(|source| RuntimeError::Onnx {
                path: path.clone(),
                source,
            })?;
            let info = model.info.clone();
            Ok(Loaded {
                manifest,
                model: Arc::new(model),
                onnx: Some(info),
            })
        }
    }
}

/// Reads a payload that must be a regular file with the given SHA-256.
pub fn read_payload(path: &Path, sha256: &str) -> Result<Vec<u8>, RuntimeError> {
    let bad = |message: String| RuntimeError::Payload {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() => return Err(bad("is not a regular file".into())),
        Ok(_) => {}
        Err(e) => return Err(bad(format!("cannot be read: {e}"))),
    }
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != sha256 {
        return Err(bad(format!(
            "is corrupt: its SHA-256 is {digest}, the manifest says {sha256}"
        )));
    }
    Ok(bytes)
}
