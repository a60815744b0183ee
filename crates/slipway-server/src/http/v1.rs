//! `POST /v1/models/{name}:predict`: records in, one prediction per record out, through the
//! same pipeline as V2 (admission, statistics, metrics).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;

use super::{AppState, ok_json};
use crate::ApiError;
use crate::pipeline::{self, Decoded};
use crate::v1::{Plan, predictions};

pub(super) async fn predict(
    State(st): State<AppState>,
    Path(m): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(name) = m.strip_suffix(":predict") else {
        return Err(ApiError::NotFound(format!(
            "unknown V1 verb in `{}`; use /v1/models/NAME:predict",
            crate::error::clip(&m, 64)
        )));
    };
    let served = st.lookup(name, None)?;
    let plan = Plan::of(&served, st.v1_unknown_columns)?;
    let decode = |body: axum::body::Bytes, claim: &mut pipeline::Claim<'_>| {
        let (inputs, wire) = plan.decode(&body, claim)?;
        let rows = slipway_engine::rows_of(&inputs);
        Ok(Decoded {
            inputs,
            wire,
            rest: rows,
        })
    };
    let encode = |outputs: Vec<slipway_core::Tensor>, rows: usize| {
        Ok(ok_json(&predictions(&served.manifest, &outputs, rows)?))
    };
    pipeline::infer(&st, &served, "rest_v1", body, decode, encode).await
}
