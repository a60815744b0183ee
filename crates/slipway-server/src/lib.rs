//! Slipway's front door: the Open Inference Protocol v2 over REST (JSON and the binary tensor
//! data extension), wire-compatible with Triton's and KServe's clients, and the V1 records API
//! for people with curl. [`app`] builds the router over one [`Engine`]; `slipway serve` and the
//! tests both use it.

// A record's column feeds whichever datatype the model's input has; the catch-all arm covers
// the kinds fed as they are.
#![allow(clippy::wildcard_enum_match_arm)]

pub mod grpc;
pub mod metrics;
pub mod oip;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::{Value as Json, json};
use slipway_core::{FeatureKind, Framework, Tensor, TensorData};
use slipway_engine::{Engine, EngineError, Served};

/// Largest request body (REST) or message (gRPC) accepted; Triton's REST default is 64 MiB.
pub const MAX_BODY: usize = 64 << 20;

/// The protocol extensions served, as server metadata lists them.
pub const EXTENSIONS: [&str; 3] = ["binary_tensor_data", "statistics", "model_repository"];

/// The runtime the network side runs on: one thread per core the process may run on
/// (`taskset` and CPU-limited containers narrow it), since more threads than cores only add
/// context switches. On one core the single-threaded runtime does the same work without the
/// work-stealing machinery (about 5 % more single-row requests per second, and a lower p99).
pub fn network_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .enable_all()
            .build()
    }
}

/// A fresh request id for a request that came without `x-request-id`.
pub fn new_request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    // `process::id()` is a system call each time (glibc no longer caches it): once is enough.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("slipway-{}-{n}", PID.get_or_init(std::process::id))
}

/// A failed request: status and the protocol's `{"error": "…"}` body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Refused because the model's queue is full (503 with `Retry-After`).
    pub overloaded: bool,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            overloaded: false,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match e {
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            EngineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            EngineError::Overloaded(_) => {
                return ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: e.to_string(),
                    overloaded: true,
                };
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<oip::BadRequest> for ApiError {
    fn from(e: oip::BadRequest) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.0)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &json!({"error": self.message}));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// A JSON body with exactly `application/json` (KServe's client needs it without a charset).
fn json_response(status: StatusCode, body: &Json) -> Response {
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

/// Loads a model by name for `POST /v2/repository/models/{m}/load`: returns its version and the
/// loaded package. Runs on a blocking thread.
pub type Loader =
    Arc<dyn Fn(&str) -> Result<(String, slipway_runtime::Loaded), String> + Send + Sync>;

/// What every handler shares: the engine, the metrics and the loader.
pub struct Shared {
    pub engine: Arc<Engine>,
    pub metrics: metrics::Metrics,
    pub loader: Option<Loader>,
}

impl Shared {
    /// The state REST and gRPC share over `engine`.
    pub fn new(engine: Arc<Engine>, loader: Option<Loader>) -> Arc<Shared> {
        Arc::new(Shared {
            engine,
            metrics: metrics::Metrics::new(),
            loader,
        })
    }
}

type AppState = Arc<Shared>;

/// The REST router over `engine`.
pub fn app(engine: Arc<Engine>) -> Router {
    app_with_loader(engine, None)
}

/// [`app`], with a loader for the repository extension's `load`.
pub fn app_with_loader(engine: Arc<Engine>, loader: Option<Loader>) -> Router {
    router(Shared::new(engine, loader))
}

/// The REST router over shared state (which a gRPC service may share too).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route(
            "/v2/health/live",
            get(|| async { json_response(StatusCode::OK, &json!({"live": true})) }),
        )
        .route("/v2/health/ready", get(server_ready))
        .route("/v2", get(server_metadata))
        .route("/v2/", get(server_metadata))
        .route("/v2/models", get(model_index))
        .route("/v2/models/stats", get(stats_all))
        .route("/v2/models/{m}/stats", get(stats_model))
        .route("/v2/models/{m}/versions/{v}/stats", get(stats_version))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{m}/unload", post(repository_unload))
        .route("/v2/repository/models/{m}/load", post(repository_load))
        .route("/v2/models/{m}", get(model_metadata))
        .route("/v2/models/{m}/versions/{v}", get(model_metadata_version))
        .route("/v2/models/{m}/ready", get(model_ready))
        .route(
            "/v2/models/{m}/versions/{v}/ready",
            get(model_ready_version),
        )
        .route("/v2/models/{m}/infer", post(infer))
        .route("/v2/models/{m}/versions/{v}/infer", post(infer_version))
        .route(
            "/",
            get(|| async { json_response(StatusCode::OK, &json!({"status": "alive"})) }),
        )
        .route("/v1/models/{m}", post(v1_predict).get(model_ready))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // `Content-Encoding: gzip | deflate` request bodies (tritonclient's
        // request_compression_algorithm); the body limit applies to the decompressed bytes.
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .layer(axum::middleware::from_fn(request_id))
        .with_state(shared)
}

/// Takes the request id from `x-request-id`, or makes one, and returns it on the response so a
/// caller can match logs to requests.
async fn request_id(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let given = request
        .headers()
        .get("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .cloned();
    let id = given.unwrap_or_else(|| {
        HeaderValue::from_str(&new_request_id()).unwrap_or(HeaderValue::from_static("slipway"))
    });
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let start = std::time::Instant::now();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let rid = id.to_str().unwrap_or("");
    if status >= 500 {
        tracing::warn!(request_id = rid, %method, path, status, micros, "request");
    } else {
        tracing::info!(request_id = rid, %method, path, status, micros, "request");
    }
    response.headers_mut().insert("x-request-id", id);
    response
}

async fn server_ready(State(st): State<AppState>) -> Response {
    if st.engine.models().is_empty() {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no model is loaded").into_response()
    } else {
        json_response(StatusCode::OK, &json!({"ready": true}))
    }
}

async fn server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"name": "slipway", "version": env!("CARGO_PKG_VERSION"), "extensions": EXTENSIONS}),
    )
}

/// One model's statistics, in Triton's shape.
fn stats_json(m: &Served) -> Json {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &m.stats;
    let ok = s.success.load(Relaxed);
    let pair = |count: u64, ns: u64| json!({"count": count, "ns": ns});
    json!({
        "name": m.name,
        "version": m.version,
        "last_inference": s.last_ms.load(Relaxed),
        "inference_count": s.rows.load(Relaxed),
        "execution_count": ok,
        "inference_stats": {
            "success": pair(ok, s.success_ns.load(Relaxed)),
            "fail": pair(s.fail.load(Relaxed), s.fail_ns.load(Relaxed)),
            "queue": pair(ok, s.queue_ns.load(Relaxed)),
            "compute_input": pair(ok, 0),
            "compute_infer": pair(ok, s.compute_ns.load(Relaxed)),
            "compute_output": pair(ok, 0),
        },
        "batch_stats": m.scheduler.batches.snapshot().into_iter().map(|(size, count, ns)| json!({
            "batch_size": size,
            "compute_input": pair(count, 0),
            "compute_infer": pair(count, ns),
            "compute_output": pair(count, 0),
        })).collect::<Vec<_>>(),
    })
}

async fn stats_all(State(st): State<AppState>) -> Response {
    let all: Vec<Json> = st.engine.models().iter().map(|m| stats_json(m)).collect();
    json_response(StatusCode::OK, &json!({"model_stats": all}))
}

async fn stats_model(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    let served = st.engine.get(&m, None)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"model_stats": [stats_json(&served)]}),
    ))
}

async fn stats_version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let served = st.engine.get(&m, Some(&v))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"model_stats": [stats_json(&served)]}),
    ))
}

/// `POST /v2/repository/index`: the models served, all READY (a model is served only once it
/// has loaded and warmed).
async fn repository_index(State(st): State<AppState>) -> Response {
    let list: Vec<Json> = st
        .engine
        .models()
        .iter()
        .map(|m| json!({"name": m.name, "version": m.version, "state": "READY"}))
        .collect();
    json_response(StatusCode::OK, &Json::Array(list))
}

/// Loads (or reloads) `m` with the server's loader, off the request threads, and serves it
/// once it has warmed. REST's and gRPC's repository `load`.
pub(crate) async fn load_model(st: &Shared, m: &str) -> Result<(), ApiError> {
    let Some(loader) = st.loader.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "this server has no registry to load models from; start it with --registry",
        ));
    };
    let name = m.to_string();
    let loaded = tokio::task::spawn_blocking(move || loader(&name))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match loaded {
        Ok((version, loaded)) => {
            st.engine.add(m, &version, loaded);
            Ok(())
        }
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("failed to load `{m}`: {e}"),
        )),
    }
}

/// Stops serving `m`; requests already running finish. REST's and gRPC's repository `unload`.
pub(crate) fn unload_model(st: &Shared, m: &str) -> Result<(), ApiError> {
    if st.engine.remove(m) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("model `{m}` is not served here"),
        ))
    }
}

/// `POST /v2/repository/models/{m}/load`.
async fn repository_load(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    load_model(&st, &m).await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}

/// `POST /v2/repository/models/{m}/unload`.
async fn repository_unload(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    unload_model(&st, &m)?;
    Ok(json_response(StatusCode::OK, &json!({})))
}

async fn model_index(State(st): State<AppState>) -> Response {
    let names: Vec<String> = st.engine.models().iter().map(|m| m.name.clone()).collect();
    json_response(StatusCode::OK, &json!({"models": names}))
}

fn metadata(served: &Served) -> Json {
    let sig = served.signature();
    let tensors = |list: &[slipway_core::TensorSpec]| -> Json {
        Json::Array(
            list.iter()
                .map(|t| json!({"name": t.name, "datatype": t.datatype.as_str(), "shape": t.shape}))
                .collect(),
        )
    };
    json!({
        "name": served.name,
        "versions": [served.version],
        "platform": served.platform(),
        "inputs": tensors(&sig.inputs),
        "outputs": tensors(&sig.outputs),
    })
}

async fn model_metadata(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    let served = st.engine.get(&m, None)?;
    Ok(json_response(StatusCode::OK, &metadata(&served)))
}

async fn model_metadata_version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let served = st.engine.get(&m, Some(&v))?;
    Ok(json_response(StatusCode::OK, &metadata(&served)))
}

async fn model_ready(
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    let served = st.engine.get(&m, None)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"name": served.name, "ready": true}),
    ))
}

async fn model_ready_version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let served = st.engine.get(&m, Some(&v))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"name": served.name, "ready": true}),
    ))
}

async fn infer(
    State(st): State<AppState>,
    Path(m): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    run_infer(&st, &m, None, &headers, &body).await
}

async fn infer_version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    run_infer(&st, &m, Some(&v), &headers, &body).await
}

async fn run_infer(
    st: &Shared,
    m: &str,
    v: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let served = st.engine.get(m, v)?;
    let decode = || {
        let header_len = match headers.get("inference-header-content-length") {
            Some(h) => Some(
                h.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                    .ok_or_else(|| {
                        oip::BadRequest("Inference-Header-Content-Length is not a number".into())
                    })?,
            ),
            None => None,
        };
        let mut request = oip::parse_request(body, header_len)?;
        let inputs = std::mem::take(&mut request.inputs);
        let wire = std::mem::take(&mut request.wire);
        Ok((inputs, wire, request))
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
    infer_v2(st, &served, "rest_v2", decode, encode).await
}

/// The path every V2 inference takes, over REST or gRPC: admitted before it is decoded (a
/// full model refuses at once), decoded, fitted to the model's input types, run, encoded, and
/// counted in the model's statistics and in the metrics under `protocol`.
pub(crate) async fn infer_v2<T, R>(
    st: &Shared,
    served: &Arc<Served>,
    protocol: &'static str,
    decode: impl FnOnce() -> Result<(Vec<Tensor>, Vec<slipway_core::DataType>, T), oip::BadRequest>,
    encode: impl FnOnce(Vec<Tensor>, T) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let _in_flight = st.metrics.in_flight();
    let start = std::time::Instant::now();
    let result = async {
        let mut admission = served.scheduler.admit()?;
        let (inputs, rest) = decode()
            .and_then(|(mut inputs, wire, rest)| {
                oip::conform(&mut inputs, &wire, served.signature())?;
                Ok((inputs, rest))
            })
            .inspect_err(|_| served.stats.record_refused(start.elapsed()))?;
        admission.set_rows(
            inputs
                .first()
                .and_then(|t| t.shape.first().copied())
                .unwrap_or(1),
        );
        let (outputs, timing) = st.engine.infer_timed(Arc::clone(served), inputs).await?;
        Ok((encode(outputs, rest)?, timing))
    }
    .await;
    let (outcome, timing, rows) = match &result {
        Ok((_, t)) => ("ok", Some((t.queue, t.compute)), Some(t.batch_rows)),
        Err(e) => (outcome_of(e), None, None),
    };
    st.metrics
        .record(served, protocol, outcome, start.elapsed(), timing, rows);
    result.map(|(r, _)| r)
}

fn outcome_of(e: &ApiError) -> &'static str {
    if e.overloaded {
        return "overloaded";
    }
    match e.status.as_u16() {
        400 => "invalid",
        404 => "not_found",
        503 => "unavailable",
        _ => "error",
    }
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    let text = st.metrics.render(&st.engine);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// `POST /v1/models/{m}:predict` with `{"instances": [{"col": value, …}, …]}`: one record per
/// row, the columns the model was trained on, answered with `{"predictions": [{…}, …]}`.
async fn v1_predict(
    State(st): State<AppState>,
    Path(m): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(name) = m.strip_suffix(":predict") else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown V1 verb in `{m}`; use /v1/models/NAME:predict"),
        ));
    };
    let served = st.engine.get(name, None)?;
    let request: Json = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request is not valid JSON: {e}"),
        )
    })?;
    let Some(instances) = request.get("instances").and_then(Json::as_array) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request needs an `instances` array of records",
        ));
    };
    let inputs = records_to_tensors(&served, instances)?;
    let _in_flight = st.metrics.in_flight();
    let start = std::time::Instant::now();
    let result = st
        .engine
        .infer_timed(Arc::clone(&served), inputs)
        .await
        .map_err(ApiError::from);
    match &result {
        Ok((_, t)) => st.metrics.record(
            &served,
            "rest_v1",
            "ok",
            start.elapsed(),
            Some((t.queue, t.compute)),
            Some(t.batch_rows),
        ),
        Err(e) => st.metrics.record(
            &served,
            "rest_v1",
            outcome_of(e),
            start.elapsed(),
            None,
            None,
        ),
    }
    let (outputs, _) = result?;
    let rows = instances.len();
    let predictions: Vec<Json> = (0..rows)
        .map(|r| {
            let mut obj = serde_json::Map::new();
            for t in &outputs {
                obj.insert(t.name.clone(), row_json(t, r, rows));
            }
            Json::Object(obj)
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"predictions": predictions}),
    ))
}

/// Row `r` of an output: a scalar for `[rows]`, a list for `[rows, k]`.
fn row_json(t: &Tensor, r: usize, rows: usize) -> Json {
    let per = t.data.len().checked_div(rows).unwrap_or(0);
    let one = |i: usize| -> Json {
        match &t.data {
            TensorData::Bool(v) => json!(v[i]),
            TensorData::Int64(v) => json!(v[i]),
            TensorData::Fp32(v) => {
                serde_json::Number::from_f64(f64::from(v[i])).map_or(Json::Null, Json::Number)
            }
            TensorData::Fp64(v) => {
                serde_json::Number::from_f64(v[i]).map_or(Json::Null, Json::Number)
            }
            TensorData::Bytes(v) => json!(String::from_utf8_lossy(&v[i])),
        }
    };
    if t.shape.len() == 1 || per == 1 {
        one(r * per)
    } else {
        Json::Array((r * per..(r + 1) * per).map(one).collect())
    }
}

fn cell_number(v: Option<&Json>) -> f64 {
    match v {
        Some(Json::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Json::String(s)) => s.trim().parse().unwrap_or(f64::NAN),
        Some(Json::Bool(b)) => f64::from(u8::from(*b)),
        Some(Json::Null | Json::Array(_) | Json::Object(_)) | None => f64::NAN,
    }
}

fn cell_text(v: Option<&Json>) -> Vec<u8> {
    match v {
        Some(Json::String(s)) => s.as_bytes().to_vec(),
        Some(Json::Number(n)) => n.to_string().into_bytes(),
        Some(Json::Bool(b)) => b.to_string().into_bytes(),
        Some(Json::Null | Json::Array(_) | Json::Object(_)) | None => Vec::new(),
    }
}

/// Records as one `[records, columns]` matrix for `input` (FP32 if it takes FP32, else FP64);
/// a missing or non-numeric field is NaN, a missing value.
fn record_matrix(input: &slipway_core::TensorSpec, instances: &[Json], columns: &[&str]) -> Tensor {
    let values = instances
        .iter()
        .flat_map(|r| columns.iter().map(move |c| cell_number(r.get(*c))));
    let data = match input.datatype {
        slipway_core::DataType::Fp32 => TensorData::Fp32(values.map(|v| v as f32).collect()),
        _ => TensorData::Fp64(values.collect()),
    };
    Tensor {
        name: input.name.clone(),
        shape: vec![instances.len(), columns.len()],
        data,
    }
}

/// Records to the model's inputs: one tensor per column for native models; the feature matrix
/// (or one tensor per column) for ONNX models.
fn records_to_tensors(served: &Served, instances: &[Json]) -> Result<Vec<Tensor>, ApiError> {
    let rows = instances.len();
    for (i, r) in instances.iter().enumerate() {
        if !r.is_object() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("instance {i} is not a record (a JSON object)"),
            ));
        }
    }
    let m = &served.manifest;
    match m.framework {
        // A matrix-layout package (`slipway train --input matrix`): its one input is the
        // numeric features in training order.
        Framework::Native if slipway_runtime::matrix_width(served.signature()).is_some() => {
            let input = &served.signature().inputs[0];
            let columns: Vec<&str> = m.features.iter().map(|f| f.name.as_str()).collect();
            Ok(vec![record_matrix(input, instances, &columns)])
        }
        Framework::Native => Ok(m
            .features
            .iter()
            .map(|f| {
                let data = match f.kind {
                    FeatureKind::Numeric { .. } => TensorData::Fp64(
                        instances
                            .iter()
                            .map(|r| cell_number(r.get(&f.name)))
                            .collect(),
                    ),
                    FeatureKind::Categorical { .. } => TensorData::Bytes(
                        instances
                            .iter()
                            .map(|r| cell_text(r.get(&f.name)))
                            .collect(),
                    ),
                };
                Tensor {
                    name: f.name.clone(),
                    shape: vec![rows],
                    data,
                }
            })
            .collect()),
        Framework::Onnx => {
            let spec = m.model.onnx.as_ref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the ONNX package has no onnx section",
                )
            })?;
            let sig = served.signature();
            if !spec.input.is_empty() {
                let input = sig
                    .inputs
                    .iter()
                    .find(|i| i.name == spec.input)
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "the graph lacks its matrix input",
                        )
                    })?;
                let columns: Vec<&str> = spec.features.iter().map(String::as_str).collect();
                return Ok(vec![record_matrix(input, instances, &columns)]);
            }
            spec.features
                .iter()
                .map(|f| {
                    let input = sig.inputs.iter().find(|i| i.name == *f).ok_or_else(|| {
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("the graph lacks input `{f}`"),
                        )
                    })?;
                    let data = match input.datatype {
                        slipway_core::DataType::Fp32 => TensorData::Fp32(
                            instances
                                .iter()
                                .map(|r| cell_number(r.get(f)) as f32)
                                .collect(),
                        ),
                        slipway_core::DataType::Fp64 => TensorData::Fp64(
                            instances.iter().map(|r| cell_number(r.get(f))).collect(),
                        ),
                        slipway_core::DataType::Int64 => TensorData::Int64(
                            instances
                                .iter()
                                .map(|r| cell_number(r.get(f)) as i64)
                                .collect(),
                        ),
                        _ => TensorData::Bytes(
                            instances.iter().map(|r| cell_text(r.get(f))).collect(),
                        ),
                    };
                    let shape = if input.shape.len() == 2 {
                        vec![rows, 1]
                    } else {
                        vec![rows]
                    };
                    Ok(Tensor {
                        name: f.clone(),
                        shape,
                        data,
                    })
                })
                .collect()
        }
    }
}

/// Serves `app(engine)` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_all(
        listener,
        None,
        engine,
        None,
        shutdown,
        std::time::Duration::MAX,
    )
    .await
    .map(|_| ())
}

/// Serves REST on `http` and, when given, gRPC on `grpc`, over one engine and one set of
/// metrics, until `shutdown` resolves. Then both stop accepting and finish the requests in
/// flight; whatever has not finished within `drain` is abandoned and this returns. Returns
/// whether every request finished.
pub async fn serve_all(
    http: tokio::net::TcpListener,
    grpc: Option<tokio::net::TcpListener>,
    engine: Arc<Engine>,
    loader: Option<Loader>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain: std::time::Duration,
) -> std::io::Result<bool> {
    use std::future::IntoFuture;
    let shared = Shared::new(engine, loader);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let rest = axum::serve(
        http.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        router(Arc::clone(&shared)),
    )
    .with_graceful_shutdown(signal(stopped.clone()))
    .into_future();
    let grpc = async {
        let Some(listener) = grpc else {
            return Ok(());
        };
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(grpc::service(Arc::clone(&shared)))
            .serve_with_incoming_shutdown(incoming, signal(stopped.clone()))
            .await
            .map_err(std::io::Error::other)
    };
    let servers = async { tokio::try_join!(rest, grpc).map(|_| ()) };
    tokio::pin!(servers);
    tokio::select! {
        done = &mut servers => return done.map(|()| true),
        () = shutdown => {}
    }
    let _ = stop.send(true);
    match tokio::time::timeout(drain, servers).await {
        Ok(done) => done.map(|()| true),
        Err(_) => {
            tracing::warn!(
                drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
                "requests still in flight at the shutdown deadline were abandoned"
            );
            Ok(false)
        }
    }
}
