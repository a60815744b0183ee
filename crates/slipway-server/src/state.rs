//! What every handler shares, REST and gRPC alike: the engine, the metrics and the V1 rules.

use std::sync::Arc;

use slipway_engine::{Engine, Served};

use crate::{ApiError, metrics};

/// What the V1 records API does with a record's field that is not one of the model's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownColumns {
    /// Refused with 400, naming the field and the record (a misspelt column would otherwise
    /// be read as missing, silently).
    #[default]
    Refuse,
    /// Ignored (for clients that send whole rows of a wider table).
    Ignore,
}

impl std::str::FromStr for UnknownColumns {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "refuse" => Ok(UnknownColumns::Refuse),
            "ignore" => Ok(UnknownColumns::Ignore),
            other => Err(format!(
                "unknown columns are `refuse`d or `ignore`d, not `{other}`"
            )),
        }
    }
}

/// The state REST and gRPC share.
pub struct Shared {
    pub engine: Arc<Engine>,
    pub metrics: metrics::Metrics,
    pub v1_unknown_columns: UnknownColumns,
    /// Who may call what (off: everyone may).
    pub auth: Arc<crate::auth::Auth>,
}

impl Shared {
    /// The state REST and gRPC share over `engine`, with the default rules.
    pub fn new(engine: Arc<Engine>) -> Arc<Shared> {
        Arc::new(Shared {
            engine,
            metrics: metrics::Metrics::new(),
            v1_unknown_columns: UnknownColumns::default(),
            auth: Arc::new(crate::auth::Auth::off()),
        })
    }

    /// The model `m` (at version `v`), or the error a client should read.
    pub fn lookup(&self, m: &str, v: Option<&str>) -> Result<Arc<Served>, ApiError> {
        Ok(self.engine.get(m, v)?)
    }
}
