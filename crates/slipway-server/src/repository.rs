//! The model repository extension, for REST and gRPC alike: the index (every model the server
//! was started with, and its state), load and unload. The semantics are the engine's
//! (`slipway_engine::Repository`): unload stops following a model until a load; load takes
//! only the names the server serves; a load's failure is logged, and the client reads that it
//! failed without the registry's paths.

use slipway_engine::{LoadError, State};

use crate::{ApiError, Shared};

/// One row of the index.
#[derive(Debug, serde::Serialize)]
pub struct IndexEntry {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The index: every model the server knows, sorted by name.
pub fn index(st: &Shared) -> Vec<IndexEntry> {
    st.engine
        .repository()
        .entries(&st.engine)
        .into_iter()
        .map(|e| IndexEntry {
            reason: match &e.state {
                State::Unavailable(_) => {
                    "its package does not load; the server log has the reason".into()
                }
                State::Loading | State::Ready | State::Unloaded => String::new(),
            },
            state: e.state.as_str(),
            version: e.version.unwrap_or_default(),
            name: e.name,
        })
        .collect()
}

/// Loads `m` again from its source and follows it again, off the request threads.
pub async fn load(st: &Shared, m: &str) -> Result<(), ApiError> {
    let engine = std::sync::Arc::clone(&st.engine);
    let name = m.to_string();
    let result = tokio::task::spawn_blocking(move || engine.repository().load(&engine, &name))
        .await
        .map_err(|e| ApiError::Internal(format!("the load task failed: {e}")))?;
    match result {
        Ok(event) => {
            tracing::info!(?event, "repository load");
            Ok(())
        }
        Err(LoadError::Unknown(msg)) => Err(ApiError::NotFound(msg)),
        Err(LoadError::NotAName(msg)) => Err(ApiError::BadRequest(msg)),
        Err(LoadError::NoSource(msg)) => Err(ApiError::NotImplemented(msg)),
        Err(LoadError::Failed(reason)) => {
            tracing::warn!(model = m, reason, "repository load failed");
            Err(ApiError::Unavailable(format!(
                "model `{}` did not load (its package is broken or unreadable); the server log has the reason",
                crate::error::clip(m, 64)
            )))
        }
    }
}

/// Writes a repository action to the registry's audit log, off the request's thread: who (the
/// key's id and name, or `no key`) and from where. A failure to write is logged.
pub async fn audit(
    st: &Shared,
    who: Option<&crate::auth::Principal>,
    from: String,
    action: &'static str,
    m: &str,
) {
    let by = who.map_or_else(
        || "no key".to_string(),
        |p| format!("key {} `{}`", p.key.id, p.key.name),
    );
    let engine = std::sync::Arc::clone(&st.engine);
    let model = m.to_string();
    let detail = format!("from {from}");
    let written = tokio::task::spawn_blocking(move || {
        engine.repository().audit(&by, action, &model, &detail)
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(action, model = m, error = %e, "writing the audit log"),
        Err(e) => tracing::warn!(action, model = m, error = %e, "the audit task failed"),
    }
}

/// Stops serving `m` and following its source until it is loaded again; requests already
/// running finish.
pub fn unload(st: &Shared, m: &str) -> Result<(), ApiError> {
    if st.engine.remove(m) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "model `{}` is not served here",
            crate::error::clip(m, 64)
        )))
    }
}
