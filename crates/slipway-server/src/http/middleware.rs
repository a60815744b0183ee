//! What every REST request goes through: a request id (taken from `x-request-id` or made),
//! a refusal of a declared body larger than the limit before a byte of it is read, one log
//! line, the detail of a server failure logged under the request id (never sent), and the
//! documented error shape for every failure, including those that axum and tower-http answer
//! themselves (a body over the limit, an unknown `Content-Encoding`, a path that is not UTF-8).

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{InternalDetail, clip};
use crate::{ApiError, MAX_BODY};

/// Longest `x-request-id` taken from a client.
const MAX_REQUEST_ID: usize = 128;

pub(super) async fn front(request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .cloned();
    let id = given.unwrap_or_else(|| {
        HeaderValue::from_str(&crate::new_request_id())
            .unwrap_or(HeaderValue::from_static("slipway"))
    });
    let method = request.method().clone();
    let path = clip(request.uri().path(), 256);
    let start = std::time::Instant::now();
    let mut response = match declared_too_large(&request) {
        Some(refusal) => refusal.into_response(),
        None => shaped(next.run(request).await).await,
    };
    let status = response.status().as_u16();
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let rid = id.to_str().unwrap_or("");
    if let Some(InternalDetail(detail)) = response.extensions_mut().remove::<InternalDetail>() {
        tracing::error!(request_id = rid, %method, path, status, micros, error = detail, "request");
    } else if status >= 500 {
        tracing::warn!(request_id = rid, %method, path, status, micros, "request");
    } else {
        tracing::info!(request_id = rid, %method, path, status, micros, "request");
    }
    response.headers_mut().insert("x-request-id", id);
    response
}

/// With keys on, the call's key must allow what its route needs ([`crate::auth::need_for`]);
/// the key it was made with rides on the request for handlers that filter by scope.
pub(super) async fn authorize(
    axum::extract::State(st): axum::extract::State<super::AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !st.auth.enabled() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    // Only the handlers that filter by scope or audit read the key: inference does not pay for
    // carrying it.
    let checked = crate::auth::with_need(request.uri().path(), |need| {
        let read = matches!(
            need,
            crate::auth::Need::Key
                | crate::auth::Need::Role(slipway_registry::Role::Deploy)
                | crate::auth::Need::Model(slipway_registry::Role::Deploy, _)
        );
        st.auth.check(presented, need).map(|p| p.filter(|_| read))
    });
    match checked {
        Ok(principal) => {
            if let Some(p) = principal {
                request.extensions_mut().insert(p);
            }
            next.run(request).await
        }
        Err(e) => {
            st.metrics.auth_refused(e.code());
            e.into_response()
        }
    }
}

/// A 413 for a request whose `Content-Length` passes the limit, answered from the header.
fn declared_too_large(request: &Request) -> Option<ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    (declared > MAX_BODY as u64).then(|| {
        ApiError::TooLarge(format!(
            "the body is {declared} bytes; this server takes at most {MAX_BODY} bytes per request: split the request"
        ))
    })
}

/// A failure answered in another shape than ours (axum's rejections and tower-http's
/// refusals are plain text, or empty) rewritten as `{"error": …, "code": …}` with the same
/// status; their text, when they have some, becomes the message.
async fn shaped(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let error = match status {
        StatusCode::BAD_REQUEST => ApiError::BadRequest(text),
        StatusCode::NOT_FOUND => ApiError::NotFound(text),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "{text}: this server takes at most {MAX_BODY} bytes per request (after decompression)"
        )),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(format!(
            "{text}: send the body as it is, or with Content-Encoding gzip or deflate"
        )),
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(text),
        StatusCode::NOT_IMPLEMENTED => ApiError::NotImplemented(text),
        _ if status.is_server_error() => ApiError::Internal(text),
        // Any other client error keeps its status with our shape.
        _ => {
            let body = serde_json::json!({"error": clip(&text, crate::error::MAX_MESSAGE), "code": "invalid_request"});
            let mut r = super::json_response(status, &body);
            *r.headers_mut() = parts.headers;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut().remove(header::CONTENT_LENGTH);
            return r;
        }
    };
    let mut r = error.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            r.headers_mut().entry(name).or_insert_with(|| value.clone());
        }
    }
    r
}
