//! The REST front door: the route table and the JSON response every handler writes. Handlers
//! live by family (`health`, `repository`, `stats`, `infer` for V2, `v1`); each extracts,
//! calls one engine or pipeline function, and maps the result. The middleware gives every
//! request an id, a log line and, whatever failed, the documented `{"error": …}` body.

mod health;
mod infer;
mod middleware;
mod repository;
mod stats;
mod v1;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};

use crate::{ApiError, MAX_BODY, Shared};

type AppState = Arc<Shared>;

/// The REST router over shared state (which a gRPC service may share too).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(stats::metrics_text))
        .route("/v2/health/live", get(health::live))
        .route("/v2/health/ready", get(health::server_ready))
        .route("/v2", get(health::server_metadata))
        .route("/v2/", get(health::server_metadata))
        .route("/v2/models", get(health::model_index))
        .route("/v2/models/stats", get(stats::all))
        .route("/v2/models/{m}/stats", get(stats::model))
        .route("/v2/models/{m}/versions/{v}/stats", get(stats::version))
        .route("/v2/repository/index", post(repository::index))
        .route("/v2/repository/models/{m}/unload", post(repository::unload))
        .route("/v2/repository/models/{m}/load", post(repository::load))
        .route("/v2/models/{m}", get(health::model_metadata))
        .route(
            "/v2/models/{m}/versions/{v}",
            get(health::model_metadata_version),
        )
        .route("/v2/models/{m}/ready", get(health::model_ready))
        .route(
            "/v2/models/{m}/versions/{v}/ready",
            get(health::model_ready_version),
        )
        .route("/v2/models/{m}/infer", post(infer::infer))
        .route(
            "/v2/models/{m}/versions/{v}/infer",
            post(infer::infer_version),
        )
        .route("/", get(health::alive))
        .route("/v1/models/{m}", post(v1::predict).get(health::model_ready))
        .fallback(|| async { ApiError::NotFound("Not Found".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // `Content-Encoding: gzip | deflate` request bodies (tritonclient's
        // request_compression_algorithm); the body limit applies to the decompressed bytes.
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        // Keys are checked before a body is decompressed or read.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            middleware::authorize,
        ))
        .layer(axum::middleware::from_fn(middleware::front))
        .with_state(shared)
}

/// A JSON body with exactly `application/json` (KServe's client needs it without a charset).
pub(crate) fn json_response(status: StatusCode, body: &Json) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// `value` as a 200 JSON response.
pub(crate) fn ok_json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_value(value) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => ApiError::Internal(format!("encoding a response: {e}")).into_response(),
    }
}

/// An empty JSON object, for routes that answer with nothing but success.
pub(crate) fn empty_ok() -> Response {
    json_response(StatusCode::OK, &json!({}))
}
