//! The one error type of `slipway-learn`.

use std::path::PathBuf;

use slipway_core::CoreError;

/// Everything that can go wrong while reading data, training, evaluating or scoring.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The data does not fit what was asked of it. `line` is the 1-based line in the file.
    #[error("{}", data_message(path, *line, column.as_deref(), message))]
    Data {
        path: PathBuf,
        line: Option<u64>,
        column: Option<String>,
        message: String,
    },
    /// A model package is missing, incomplete or corrupt.
    #[error("package {}: {message}", dir.display())]
    Package { dir: PathBuf, message: String },
    /// A training or tuning parameter is out of range or inconsistent.
    #[error("invalid parameter: {0}")]
    Param(String),
    #[error(transparent)]
    Core(#[from] CoreError),
}

fn data_message(
    path: &std::path::Path,
    line: Option<u64>,
    column: Option<&str>,
    message: &str,
) -> String {
    let mut out = path.display().to_string();
    if let Some(line) = line {
        out.push_str(&format!(":{line}"));
    }
    out.push_str(": ");
    if let Some(column) = column {
        out.push_str(&format!("column `{column}`: "));
    }
    out.push_str(message);
    out
}

impl LearnError {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LearnError::Io {
            path: path.into(),
            source,
        }
    }

    /// Bad data in `path`, with no line or column to point at.
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        LearnError::Data {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub(crate) fn package(dir: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        LearnError::Package {
            dir: dir.into(),
            message: message.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = LearnError> = std::result::Result<T, E>;
