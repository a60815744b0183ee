//! `POST /v2/repository/index`, `…/models/{m}/load` and `…/unload`.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;

use super::{AppState, empty_ok, ok_json};
use crate::ApiError;
use crate::auth::Principal;

pub(super) async fn index(State(st): State<AppState>) -> Response {
    ok_json(&crate::repository::index(&st))
}

/// The client's address, for the audit log.
fn from(addr: &Option<Extension<ConnectInfo<SocketAddr>>>) -> String {
    addr.as_ref()
        .map_or_else(|| "an unknown address".into(), |a| a.0.0.to_string())
}

pub(super) async fn load(
    State(st): State<AppState>,
    Path(m): Path<String>,
    principal: Option<Extension<Principal>>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Response, ApiError> {
    crate::repository::load(&st, &m).await?;
    crate::repository::audit(&st, principal.as_deref(), from(&addr), "serve.load", &m).await;
    Ok(empty_ok())
}

pub(super) async fn unload(
    State(st): State<AppState>,
    Path(m): Path<String>,
    principal: Option<Extension<Principal>>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Response, ApiError> {
    crate::repository::unload(&st, &m)?;
    crate::repository::audit(&st, principal.as_deref(), from(&addr), "serve.unload", &m).await;
    Ok(empty_ok())
}
