//! Health, server and model metadata, readiness and the model index.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{AppState, json_response, ok_json};
use crate::ApiError;
use crate::describe::Metadata;

pub(super) async fn live() -> Response {
    json_response(StatusCode::OK, &json!({"live": true}))
}

/// KServe's V1 root.
pub(super) async fn alive() -> Response {
    json_response(StatusCode::OK, &json!({"status": "alive"}))
}

/// Ready once every model the server was started with has had its first load, and at least
/// one of them is served (a model that failed to load is reported, not waited for).
pub(super) async fn server_ready(State(st): State<AppState>) -> Response {
    match st.engine.repository().readiness(&st.engine) {
        Ok(()) => json_response(StatusCode::OK, &json!({"ready": true})),
        Err(why) => {
            let mut r = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "error": why, "code": "unavailable"}),
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            r
        }
    }
}

pub(super) async fn server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"name": "slipway", "version": env!("CARGO_PKG_VERSION"), "extensions": crate::EXTENSIONS}),
    )
}

pub(super) async fn model_index(
    State(st): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Response {
    // A key sees the models in its scope only.
    let names: Vec<String> = st
        .engine
        .models()
        .iter()
        .map(|m| m.name.clone())
        .filter(|n| principal.as_ref().is_none_or(|p| p.covers(n)))
        .collect();
    json_response(StatusCode::OK, &json!({"models": names}))
}

pub(super) async fn model_metadata(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ok_json(&Metadata::with_example(
        st.lookup(&m, None)?.as_ref(),
    )))
}

pub(super) async fn model_metadata_version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok_json(&Metadata::with_example(
        st.lookup(&m, Some(&v))?.as_ref(),
    )))
}

pub(super) async fn model_ready(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    ready(&st, &m, None)
}

pub(super) async fn model_ready_version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ready(&st, &m, Some(&v))
}

/// 200 when served; 503 with the reason for a model the server should serve but cannot
/// (its package failed to load); 404 for a name it does not know.
fn ready(st: &AppState, m: &str, v: Option<&str>) -> Result<Response, ApiError> {
    let served = st.lookup(m, v)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"name": served.name, "ready": true}),
    ))
}
