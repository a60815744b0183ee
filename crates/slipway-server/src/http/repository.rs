//! `POST /v2/repository/index`, `…/models/{m}/load` and `…/unload`.

use axum::extract::{Path, State};
use axum::response::Response;

use super::{AppState, empty_ok, ok_json};
use crate::ApiError;

pub(super) async fn index(State(st): State<AppState>) -> Response {
    ok_json(&crate::repository::index(&st))
}

pub(super) async fn load(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    crate::repository::load(&st, &m).await?;
    Ok(empty_ok())
}

pub(super) async fn unload(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    crate::repository::unload(&st, &m)?;
    Ok(empty_ok())
}
