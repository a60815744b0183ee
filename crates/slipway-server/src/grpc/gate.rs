//! The gRPC front gate: with keys on, a call without a working key is refused from its
//! metadata before its message is decompressed or decoded (and a stream before it opens).
//! Health (`ServerLive`, `ServerReady`) stays open. Each RPC then checks the role and model its
//! message needs (`logged`, and per message in streams).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{Request, Response};

use crate::Shared;
use crate::auth::Need;

/// Wraps the gRPC routes in a [`Gate`].
#[derive(Clone)]
pub struct GateLayer {
    pub shared: Arc<Shared>,
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// See the module.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// The RPCs open to all.
const OPEN: [&str; 2] = [
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
];

impl<S, B> tower::Service<Request<B>> for Gate<S>
where
    S: tower::Service<Request<B>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let auth = &self.shared.auth;
        if auth.enabled() && !OPEN.contains(&req.uri().path()) {
            let presented = req
                .headers()
                .get("authorization")
                .map(axum::http::HeaderValue::as_bytes);
            if let Err(e) = auth.check(presented, Need::Key) {
                self.shared.metrics.auth_refused(e.code());
                let status: tonic::Status = e.into();
                let refused = status.into_http::<tonic::body::Body>();
                return Box::pin(async move { Ok(refused) });
            }
        }
        Box::pin(self.inner.call(req))
    }
}
