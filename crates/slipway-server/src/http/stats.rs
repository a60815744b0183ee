//! The statistics extension and the Prometheus text at `/metrics`.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, ok_json};
use crate::ApiError;
use crate::describe::Stats;

#[derive(serde::Serialize)]
struct ModelStats {
    model_stats: Vec<Stats>,
}

pub(super) async fn all(State(st): State<AppState>) -> Response {
    ok_json(&ModelStats {
        model_stats: st.engine.models().iter().map(|m| Stats::of(m)).collect(),
    })
}

pub(super) async fn model(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    let served = st.lookup(&m, None)?;
    Ok(ok_json(&ModelStats {
        model_stats: vec![Stats::of(&served)],
    }))
}

pub(super) async fn version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let served = st.lookup(&m, Some(&v))?;
    Ok(ok_json(&ModelStats {
        model_stats: vec![Stats::of(&served)],
    }))
}

pub(super) async fn metrics_text(State(st): State<AppState>) -> Response {
    let text = st.metrics.render(&st.engine);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
