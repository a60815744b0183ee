//! The one path every inference takes, over REST (V2 and V1) or gRPC: admitted before its body
//! is decoded (a full model refuses at once), its rows claimed as soon as the decoder knows
//! them and before any data is allocated, decoded, fitted to the model's input types, run,
//! encoded, and counted in the model's statistics and in the metrics under its protocol. A new
//! step (authentication, monitoring) goes here, once.

use std::sync::Arc;

use slipway_core::{DataType, Tensor};
use slipway_engine::Served;

use crate::{ApiError, Shared, oip};

/// What a decoder hands on: the inputs, the datatypes they were sent as, and whatever the
/// encoder needs of the request.
pub(crate) struct Decoded<T> {
    pub inputs: Vec<Tensor>,
    pub wire: Vec<DataType>,
    pub rest: T,
}

/// Tells admission a request's rows, before its data is decoded.
pub(crate) type Claim<'c> = dyn FnMut(usize) -> Result<(), ApiError> + 'c;

/// Where a request's body comes from: read whole for a request the model admits, or read and
/// dropped, unkept, for one it refuses (HTTP/1.1 keeps the connection only once the body is
/// read; refusing without reading it made clients see resets instead of 503s).
pub(crate) trait Incoming {
    type Body;
    /// The whole body.
    fn read(self) -> impl Future<Output = Result<Self::Body, ApiError>> + Send;
    /// Reads the body to its end without keeping it (up to the body limit).
    fn discard(self) -> impl Future<Output = ()> + Send;
}

/// A REST body.
impl Incoming for axum::body::Body {
    type Body = axum::body::Bytes;

    async fn read(self) -> Result<Self::Body, ApiError> {
        read_body(self).await
    }

    async fn discard(self) {
        use http_body_util::BodyExt;
        let mut body = http_body_util::Limited::new(self, crate::MAX_BODY);
        // A client that trickles its body is not waited for: past the bound the connection is
        // closed instead (as hyper does with a body left unread).
        let drain = async { while let Some(Ok(_)) = body.frame().await {} };
        let _ = tokio::time::timeout(DISCARD_WITHIN, drain).await;
    }
}

/// How long a refused request's body may take to arrive before its connection is dropped.
const DISCARD_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// A body already decoded (a gRPC message).
pub(crate) struct Ready<T>(pub T);

impl<T: Send> Incoming for Ready<T> {
    type Body = T;

    async fn read(self) -> Result<T, ApiError> {
        Ok(self.0)
    }

    async fn discard(self) {}
}

/// Runs one request through admission, reading its `body`, `decode`, conform, the engine and
/// `encode`, and counts it. A full model refuses before the body is kept or parsed. `decode` must call
/// the claim it is given with the request's rows before it allocates for the request's data
/// (it may call it again with the same count).
pub(crate) async fn infer<I: Incoming, T, R>(
    st: &Shared,
    served: &Arc<Served>,
    protocol: &'static str,
    body: I,
    decode: impl FnOnce(I::Body, &mut Claim<'_>) -> Result<Decoded<T>, ApiError>,
    encode: impl FnOnce(Vec<Tensor>, T) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let _in_flight = st.metrics.in_flight();
    let start = std::time::Instant::now();
    // The engine counts what reaches it; what is refused before is counted here, once.
    let mut reached_engine = false;
    let result = async {
        // A full model refuses before the body is kept or parsed: its bytes are read and
        // dropped, which is what a refusal costs (bench/goodput.py).
        let mut admission = match served.scheduler.admit() {
            Ok(admission) => admission,
            Err(refused) => {
                body.discard().await;
                return Err(refused.into());
            }
        };
        let body = body.read().await?;
        let decoded = {
            // A request of no rows still takes a turn of the model: it holds one.
            let mut claim = |rows: usize| admission.claim(rows.max(1)).map_err(ApiError::from);
            decode(body, &mut claim).and_then(|mut d| {
                oip::conform(&mut d.inputs, &d.wire, served.signature())?;
                Ok(d)
            })
        }?;
        reached_engine = true;
        let (outputs, timing) = st
            .engine
            .infer_admitted(Arc::clone(served), decoded.inputs, &mut admission)
            .await?;
        Ok((encode(outputs, decoded.rest)?, timing))
    }
    .await;
    if result.is_err() && !reached_engine {
        served.stats.record_refused(start.elapsed());
    }
    let (outcome, timing, rows) = match &result {
        Ok((_, t)) => ("ok", Some((t.queue, t.compute)), Some(t.batch_rows)),
        Err(e) => (outcome_of(e), None, None),
    };
    st.metrics
        .record(served, protocol, outcome, start.elapsed(), timing, rows);
    result.map(|(r, _)| r)
}

/// The `outcome` label of a failed request.
pub(crate) fn outcome_of(e: &ApiError) -> &'static str {
    match e {
        ApiError::Overloaded(_) => "overloaded",
        ApiError::BadRequest(_) | ApiError::UnsupportedMediaType(_) => "invalid",
        ApiError::TooLarge(_) => "too_large",
        ApiError::RateLimited(..) => "rate_limited",
        ApiError::NotFound(_) => "not_found",
        ApiError::Unauthenticated(_) => "unauthenticated",
        ApiError::Forbidden(_) => "forbidden",
        ApiError::Unavailable(_) => "unavailable",
        ApiError::MethodNotAllowed | ApiError::Internal(_) | ApiError::NotImplemented(_) => "error",
    }
}

/// A REST body read whole, up to [`crate::MAX_BODY`] bytes (after decompression).
async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, crate::MAX_BODY)
        .await
        .map_err(|e| {
            // axum's limit error (http-body-util's `LengthLimitError`) says so in its text.
            let over = format!("{e:?} {e}").contains("length limit");
            if over {
                ApiError::TooLarge(format!(
                    "the body is over {} bytes (after decompression): split the request",
                    crate::MAX_BODY
                ))
            } else {
                ApiError::BadRequest(format!("the body could not be read: {e}"))
            }
        })
}
