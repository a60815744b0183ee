//! The one error type of `slipway-registry`.

use std::path::PathBuf;

/// What can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such model, version or alias.
    #[error("{0}")]
    NotFound(String),
    /// A malformed reference, name, tag or gate.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the registry's state (deleting an aliased version, …).
    #[error("{0}")]
    Conflict(String),
    /// A promotion gate failed; nothing moved.
    #[error("{0}")]
    GateFailed(String),
    /// Stored data does not match its digest, or is missing.
    #[error("{0}")]
    Corrupt(String),
    /// The registry was written by a newer Slipway.
    #[error(
        "the registry at {path} has schema version {found}, newer than this slipway understands ({supported}); upgrade slipway"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// The database failed.
    #[error("registry database {path}: {message}")]
    Database { path: PathBuf, message: String },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
