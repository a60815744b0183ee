//! `POST /v2/models/{m}[/versions/{v}]/infer`: the V2 REST body (JSON, or the binary tensor
//! extension) through the one inference pipeline.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::pipeline::{self, Decoded};
use crate::{ApiError, Shared, oip};

pub(super) async fn infer(
    State(st): State<AppState>,
    Path(m): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    run(&st, &m, None, &headers, body).await
}

pub(super) async fn infer_version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    run(&st, &m, Some(&v), &headers, body).await
}

async fn run(
    st: &Shared,
    m: &str,
    v: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let served = st.lookup(m, v)?;
    let decode = |body: axum::body::Bytes, claim: &mut pipeline::Claim<'_>| {
        let header_len = match headers.get("inference-header-content-length") {
            Some(h) => Some(
                h.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                    .ok_or_else(|| {
                        ApiError::BadRequest(
                            "Inference-Header-Content-Length is not a number".into(),
                        )
                    })?,
            ),
            None => None,
        };
        let mut request = oip::parse_request(&body, header_len, claim)?;
        Ok(Decoded {
            inputs: std::mem::take(&mut request.inputs),
            wire: std::mem::take(&mut request.wire),
            rest: request,
        })
    };
    let encode = |outputs, request: oip::InferRequest| {
        let encoded = oip::encode_response(&served.name, &served.version, &request, outputs)?;
        let content_type = if encoded.header_len.is_some() {
            "application/octet-stream"
        } else {
            "application/json"
        };
        let mut response = (StatusCode::OK, encoded.body).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(n) = encoded.header_len {
            h.insert("inference-header-content-length", HeaderValue::from(n));
        }
        Ok(response)
    };
    pipeline::infer(st, &served, "rest_v2", body, decode, encode).await
}
