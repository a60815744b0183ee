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

/// Runs one request through reading its `body`, admission, `decode`, conform, the engine and
/// `encode`, and counts it. A full model refuses before the body is parsed. `decode` must call
/// the claim it is given with the request's rows before it allocates for the request's data
/// (it may call it again with the same count).
pub(crate) async fn infer<B, T, R>(
    st: &Shared,
    served: &Arc<Served>,
    protocol: &'static str,
    body: impl std::future::Future<Output = Result<B, ApiError>>,
    decode: impl FnOnce(B, &mut Claim<'_>) -> Result<Decoded<T>, ApiError>,
    encode: impl FnOnce(Vec<Tensor>, T) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let _in_flight = st.metrics.in_flight();
    let start = std::time::Instant::now();
    // The engine counts what reaches it; what is refused before is counted here, once.
    let mut reached_engine = false;
    let result = async {
        // The body is read before a full model refuses: refusing without reading it made the
        // server close the connection under the client's feet (resets instead of 503s), and
        // it gained no goodput (bench/goodput.py). A full model still refuses before parsing.
        let body = body.await?;
        let mut admission = served.scheduler.admit()?;
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
        ApiError::NotFound(_) => "not_found",
        ApiError::Unavailable(_) => "unavailable",
        ApiError::MethodNotAllowed | ApiError::Internal(_) | ApiError::NotImplemented(_) => "error",
    }
}

/// A REST body read whole, up to [`crate::MAX_BODY`] bytes (after decompression).
pub(crate) async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, ApiError> {
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
