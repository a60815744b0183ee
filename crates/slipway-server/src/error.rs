//! The server's one error enum, [`ApiError`], and its two mappings: to an HTTP status and
//! body (`{"error": "…", "code": "…"}`), and to a gRPC status. Both matches are exhaustive, so
//! a new kind of error cannot reach a client as the wrong status: the compiler asks for its
//! row in each.
//!
//! | variant | HTTP | gRPC | `code` |
//! |---|---|---|---|
//! | `BadRequest` | 400 | INVALID_ARGUMENT | `invalid_request` |
//! | `Unauthenticated` | 401 + `WWW-Authenticate: Bearer` | UNAUTHENTICATED | `unauthenticated` |
//! | `Forbidden` | 403 | PERMISSION_DENIED | `forbidden` |
//! | `NotFound` | 404 | NOT_FOUND | `not_found` |
//! | `MethodNotAllowed` | 405 | UNIMPLEMENTED | `method_not_allowed` |
//! | `TooLarge` | 413 | RESOURCE_EXHAUSTED | `too_large` |
//! | `RateLimited` | 429 + `Retry-After` | RESOURCE_EXHAUSTED + `retry-after` | `rate_limited` |
//! | `UnsupportedMediaType` | 415 | INVALID_ARGUMENT | `unsupported_media_type` |
//! | `Internal` | 500 | INTERNAL | `internal` |
//! | `NotImplemented` | 501 | UNIMPLEMENTED | `not_implemented` |
//! | `Overloaded` | 503 + `Retry-After: 1` | UNAVAILABLE + `retry-after` | `overloaded` |
//! | `Unavailable` | 503 + `Retry-After: 1` | UNAVAILABLE | `unavailable` |
//!
//! Messages are clipped to [`MAX_MESSAGE`] bytes (a name a client sent is echoed at most in
//! part, and a gRPC status stays within every client's metadata limit). An `Internal` error's
//! text never reaches the client: the client reads a generic message and the request id, and
//! the log has the detail under that id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use slipway_engine::EngineError;

use crate::oip::BadRequest;

/// Longest error message sent to a client, in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// What a client is told when the server failed it.
pub const INTERNAL_MESSAGE: &str =
    "the server failed on this request; its log has the details under this request's x-request-id";

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The request is malformed or does not fit the model.
    BadRequest(String),
    /// No key, or a key that is not one (unknown, malformed, revoked, expired).
    Unauthenticated(String),
    /// A key that may not do this.
    Forbidden(String),
    /// No such model, version or route.
    NotFound(String),
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// The request is larger than the server or the model takes.
    TooLarge(String),
    /// The key is over its rate: retry after this many seconds.
    RateLimited(String, u64),
    /// A body in an encoding or type the server does not read.
    UnsupportedMediaType(String),
    /// The server failed (a model error, a bug): the text is logged, never sent.
    Internal(String),
    /// A feature this server was not started with.
    NotImplemented(String),
    /// The model has no room for the request now: retry shortly.
    Overloaded(String),
    /// The server or model cannot answer now (shutting down, not loaded).
    Unavailable(String),
}

/// The detail of an [`ApiError::Internal`], kept on the response for the logging middleware.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Overloaded(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC code.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            ApiError::BadRequest(_) | ApiError::UnsupportedMediaType(_) => {
                tonic::Code::InvalidArgument
            }
            ApiError::Unauthenticated(_) => tonic::Code::Unauthenticated,
            ApiError::Forbidden(_) => tonic::Code::PermissionDenied,
            ApiError::NotFound(_) => tonic::Code::NotFound,
            ApiError::MethodNotAllowed | ApiError::NotImplemented(_) => tonic::Code::Unimplemented,
            ApiError::TooLarge(_) | ApiError::RateLimited(..) => tonic::Code::ResourceExhausted,
            ApiError::Internal(_) => tonic::Code::Internal,
            ApiError::Overloaded(_) | ApiError::Unavailable(_) => tonic::Code::Unavailable,
        }
    }

    /// The stable name of this kind of error (the body's `code`).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::TooLarge(_) => "too_large",
            ApiError::RateLimited(..) => "rate_limited",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Internal(_) => "internal",
            ApiError::NotImplemented(_) => "not_implemented",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    /// What the client is told (clipped to [`MAX_MESSAGE`]).
    pub fn message(&self) -> String {
        let text = match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthenticated(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::TooLarge(m)
            | ApiError::RateLimited(m, _)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::NotImplemented(m)
            | ApiError::Overloaded(m)
            | ApiError::Unavailable(m) => m.as_str(),
            ApiError::MethodNotAllowed => "Method Not Allowed",
            ApiError::Internal(_) => INTERNAL_MESSAGE,
        };
        clip(text, MAX_MESSAGE)
    }

    /// Whether the client should retry shortly (`Retry-After`).
    pub fn retry(&self) -> bool {
        matches!(
            self,
            ApiError::Overloaded(_) | ApiError::Unavailable(_) | ApiError::RateLimited(..)
        )
    }

    /// The seconds `Retry-After` says.
    fn retry_after(&self) -> HeaderValue {
        if let ApiError::RateLimited(_, s) = self {
            HeaderValue::from(*s)
        } else {
            HeaderValue::from_static("1")
        }
    }
}

/// `text` cut at a character boundary to at most `max` bytes, marked with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(m) => ApiError::NotFound(m),
            EngineError::InvalidInput(m) => ApiError::BadRequest(m),
            EngineError::Unavailable(m) => ApiError::Unavailable(m),
            EngineError::Overloaded(m) => ApiError::Overloaded(m),
            EngineError::TooLarge(m) => ApiError::TooLarge(m),
            EngineError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<BadRequest> for ApiError {
    fn from(e: BadRequest) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message(), "code": self.code()});
        let mut r = crate::http::json_response(self.status(), &body);
        if self.retry() {
            r.headers_mut()
                .insert(header::RETRY_AFTER, self.retry_after());
        }
        if let ApiError::Unauthenticated(_) = self {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"slipway\""),
            );
        }
        if let ApiError::Internal(detail) = self {
            r.extensions_mut().insert(InternalDetail(detail));
        }
        r
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let mut status = tonic::Status::new(e.grpc_code(), e.message());
        if e.retry() {
            if let Ok(v) = e.retry_after().to_str().unwrap_or("1").parse() {
                status.metadata_mut().insert("retry-after", v);
            }
        }
        if let ApiError::Internal(detail) = e {
            status.set_source(std::sync::Arc::new(InternalError(detail)));
        }
        status
    }
}

/// An internal error's detail, carried to the gRPC log as the status's source.
#[derive(Debug)]
pub struct InternalError(pub String);

impl std::fmt::Display for InternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InternalError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(2000);
        let clipped = clip(&long, MAX_MESSAGE);
        assert!(clipped.len() <= MAX_MESSAGE);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short", MAX_MESSAGE), "short");
        let e = ApiError::NotFound(format!(
            "model `{}` is not served here",
            "m".repeat(100_000)
        ));
        assert!(e.message().len() <= MAX_MESSAGE);
        assert!(tonic::Status::from(e).message().len() <= MAX_MESSAGE);
    }

    #[test]
    fn internal_text_never_reaches_the_client() {
        let e = ApiError::Internal("tract: node Gather_7 failed at /src/x.rs".into());
        assert_eq!(e.message(), INTERNAL_MESSAGE);
        let s = tonic::Status::from(e.clone());
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(!s.message().contains("Gather"));
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.extensions().get::<InternalDetail>().is_some());
    }

    #[test]
    fn future_statuses_keep_their_meaning_over_grpc() {
        for (e, code) in [
            (
                ApiError::TooLarge(String::new()),
                tonic::Code::ResourceExhausted,
            ),
            (
                ApiError::Overloaded(String::new()),
                tonic::Code::Unavailable,
            ),
            (ApiError::NotFound(String::new()), tonic::Code::NotFound),
            (ApiError::MethodNotAllowed, tonic::Code::Unimplemented),
        ] {
            assert_eq!(e.grpc_code(), code, "{e:?}");
        }
    }
}
