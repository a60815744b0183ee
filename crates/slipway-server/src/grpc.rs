//! The Open Inference Protocol v2 over gRPC: `inference.GRPCInferenceService` as Triton
//! defines it, so `tritonclient.grpc` and KServe's `InferenceGRPCClient` work unchanged.
//! Same engine, checks, metrics and statistics as REST; outputs always go back in
//! `raw_output_contents` (tritonclient reads nothing else for numeric types).

// Datatypes: the catch-all arm is the refusal of every other kind.
#![allow(clippy::wildcard_enum_match_arm)]

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use slipway_core::{DataType, Tensor, TensorData};
use slipway_engine::{EngineError, Served};
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

use crate::oip::{self, BadRequest};
use crate::{ApiError, Shared};

/// The generated protocol types and service traits.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("inference");
}

use pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};

/// The gRPC service over the server's shared state.
#[derive(Clone)]
pub struct Grpc {
    shared: Arc<Shared>,
}

/// The tonic service for `shared`: messages up to [`crate::MAX_BODY`] in, any size out,
/// gzip and deflate requests accepted.
pub fn service(shared: Arc<Shared>) -> GrpcInferenceServiceServer<Grpc> {
    GrpcInferenceServiceServer::new(Grpc { shared })
        .max_decoding_message_size(crate::MAX_BODY)
        .max_encoding_message_size(usize::MAX)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Deflate)
}

fn status_of(e: EngineError) -> Status {
    ApiError::from(e).into()
}

/// The one mapping from errors to gRPC codes, through REST's statuses.
impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let code = match e.status.as_u16() {
            400 => Code::InvalidArgument,
            404 => Code::NotFound,
            501 => Code::Unimplemented,
            503 => Code::Unavailable,
            _ => Code::Internal,
        };
        let mut status = Status::new(code, e.message);
        if e.overloaded {
            status.metadata_mut().insert(
                "retry-after",
                tonic::metadata::MetadataValue::from_static("1"),
            );
        }
        status
    }
}

fn version_of(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

/// Decodes a request's inputs, from `raw_input_contents` or from typed `contents`, into
/// tensors and the datatypes they were sent as.
pub fn decode_inputs(
    req: &pb::ModelInferRequest,
) -> Result<(Vec<Tensor>, Vec<DataType>), BadRequest> {
    let raw = !req.raw_input_contents.is_empty();
    if raw && req.inputs.iter().any(|i| i.contents.is_some()) {
        return Err(BadRequest(
            "contents field must not be specified when using raw_input_contents".into(),
        ));
    }
    if raw && req.raw_input_contents.len() != req.inputs.len() {
        return Err(BadRequest(format!(
            "{} inputs but {} raw_input_contents entries; send one per input, in order",
            req.inputs.len(),
            req.raw_input_contents.len()
        )));
    }
    let mut tensors = Vec::with_capacity(req.inputs.len());
    let mut wire = Vec::with_capacity(req.inputs.len());
    for (k, input) in req.inputs.iter().enumerate() {
        let name = &input.name;
        let dt = oip::datatype(&input.datatype)?;
        let shape = oip::shape_of(name, &input.shape)?;
        let count = oip::element_count(name, &shape)?;
        let data = if raw {
            oip::binary_data(name, dt, &req.raw_input_contents[k], count)?
        } else {
            let Some(c) = &input.contents else {
                return Err(BadRequest(format!(
                    "input `{name}` has no data: set its `contents` or send raw_input_contents"
                )));
            };
            typed_data(name, dt, c, count)?
        };
        tensors.push(Tensor {
            name: name.clone(),
            shape,
            data,
        });
        wire.push(dt);
    }
    Ok((tensors, wire))
}

/// Typed `contents`: each datatype in its field, INT8/16 and UINT8/16 widened to 32 bits by
/// the protocol and narrowed back here with a range check.
fn typed_data(
    name: &str,
    dt: DataType,
    c: &pb::InferTensorContents,
    count: usize,
) -> Result<TensorData, BadRequest> {
    let got = match dt {
        DataType::Bool => c.bool_contents.len(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => c.int_contents.len(),
        DataType::Int64 => c.int64_contents.len(),
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => c.uint_contents.len(),
        DataType::Uint64 => c.uint64_contents.len(),
        DataType::Fp32 => c.fp32_contents.len(),
        DataType::Fp64 => c.fp64_contents.len(),
        DataType::Bytes => c.bytes_contents.len(),
        DataType::Fp16 | DataType::Bf16 => {
            return Err(BadRequest(format!(
                "input `{name}`: {dt} has no typed contents field; send it in raw_input_contents"
            )));
        }
    };
    if got != count {
        return Err(BadRequest(format!(
            "input `{name}` has {got} {dt} elements in `contents`, its shape needs {count}"
        )));
    }
    Ok(match dt {
        DataType::Bool => TensorData::Bool(c.bool_contents.clone()),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => TensorData::Int64(
            c.int_contents
                .iter()
                .enumerate()
                .map(|(i, &v)| oip::narrow(name, dt, i, v.into()))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => TensorData::Int64(
            c.uint_contents
                .iter()
                .enumerate()
                .map(|(i, &v)| oip::narrow(name, dt, i, v.into()))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint64 => TensorData::Int64(
            c.uint64_contents
                .iter()
                .enumerate()
                .map(|(i, &v)| oip::narrow(name, dt, i, v.into()))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Int64 => TensorData::Int64(c.int64_contents.clone()),
        DataType::Fp32 => TensorData::Fp32(c.fp32_contents.clone()),
        DataType::Fp64 => TensorData::Fp64(c.fp64_contents.clone()),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents.clone()),
        other => return Err(BadRequest(format!("datatype {other} is not supported"))),
    })
}

/// The response: the requested outputs (all of them when none is named), in the order asked,
/// each with its data in `raw_output_contents`.
fn encode(
    served: &Served,
    id: String,
    requested: &[pb::model_infer_request::InferRequestedOutputTensor],
    outputs: Vec<Tensor>,
) -> Result<pb::ModelInferResponse, ApiError> {
    let chosen = if requested.is_empty() {
        outputs
    } else {
        let mut all = outputs;
        let mut chosen = Vec::with_capacity(requested.len());
        for r in requested {
            let Some(i) = all.iter().position(|t| t.name == r.name) else {
                return Err(
                    oip::BadRequest(format!("the model has no output `{}`", r.name)).into(),
                );
            };
            chosen.push(all.swap_remove(i));
        }
        chosen
    };
    let mut resp = pb::ModelInferResponse {
        model_name: served.name.clone(),
        model_version: served.version.clone(),
        id,
        ..Default::default()
    };
    for t in chosen {
        resp.raw_output_contents.push(oip::binary_block(&t.data));
        resp.outputs
            .push(pb::model_infer_response::InferOutputTensor {
                name: t.name,
                datatype: t.data.datatype().as_str().to_string(),
                shape: t.shape.iter().map(|&d| d as i64).collect(),
                ..Default::default()
            });
    }
    Ok(resp)
}

impl Grpc {
    /// One ModelInfer, from request to response, with metrics and statistics.
    async fn infer(&self, req: pb::ModelInferRequest) -> Result<pb::ModelInferResponse, Status> {
        let st = &self.shared;
        let served = st
            .engine
            .get(&req.model_name, version_of(&req.model_version))
            .map_err(status_of)?;
        let decode = || decode_inputs(&req).map(|(inputs, wire)| (inputs, wire, ()));
        let encode = |outputs, ()| encode(&served, req.id.clone(), &req.outputs, outputs);
        crate::infer_v2(st, &served, "grpc", decode, encode)
            .await
            .map_err(Status::from)
    }
}

/// Logs one RPC as REST requests are logged: id (from `x-request-id` metadata, or made up),
/// method, gRPC status and µs.
fn log_rpc<T>(rpc: &str, rid: &str, start: Instant, result: &Result<T, Status>) {
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    match result {
        Ok(_) => tracing::info!(request_id = rid, rpc, grpc_status = 0, micros, "rpc"),
        Err(s) => {
            let code = s.code() as i32;
            if matches!(s.code(), Code::InvalidArgument | Code::NotFound) {
                tracing::info!(
                    request_id = rid,
                    rpc,
                    grpc_status = code,
                    micros,
                    error = s.message(),
                    "rpc"
                );
            } else {
                tracing::warn!(
                    request_id = rid,
                    rpc,
                    grpc_status = code,
                    micros,
                    error = s.message(),
                    "rpc"
                );
            }
        }
    }
}

fn request_id<T>(req: &Request<T>) -> String {
    req.metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(crate::new_request_id, str::to_string)
}

/// Runs `f`, logs it, and returns the request id in the response metadata.
async fn logged<T, R, F>(
    rpc: &str,
    req: Request<T>,
    f: impl FnOnce(T) -> F,
) -> Result<Response<R>, Status>
where
    F: std::future::Future<Output = Result<R, Status>>,
{
    let start = Instant::now();
    let rid = request_id(&req);
    let result = f(req.into_inner()).await;
    log_rpc(rpc, &rid, start, &result);
    let mut response = Response::new(result?);
    if let Ok(v) = rid.parse() {
        response.metadata_mut().insert("x-request-id", v);
    }
    Ok(response)
}

fn stats_pb(m: &Served) -> pb::ModelStatistics {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &m.stats;
    let ok = s.success.load(Relaxed);
    let pair = |count: u64, ns: u64| Some(pb::StatisticDuration { count, ns });
    pb::ModelStatistics {
        name: m.name.clone(),
        version: m.version.clone(),
        last_inference: s.last_ms.load(Relaxed),
        inference_count: s.rows.load(Relaxed),
        execution_count: ok,
        inference_stats: Some(pb::InferStatistics {
            success: pair(ok, s.success_ns.load(Relaxed)),
            fail: pair(s.fail.load(Relaxed), s.fail_ns.load(Relaxed)),
            queue: pair(ok, s.queue_ns.load(Relaxed)),
            compute_input: pair(ok, 0),
            compute_infer: pair(ok, s.compute_ns.load(Relaxed)),
            compute_output: pair(ok, 0),
            cache_hit: pair(0, 0),
            cache_miss: pair(0, 0),
        }),
        batch_stats: m
            .scheduler
            .batches
            .snapshot()
            .into_iter()
            .map(|(batch_size, count, ns)| pb::InferBatchStatistics {
                batch_size: batch_size as u64,
                compute_input: pair(count, 0),
                compute_infer: pair(count, ns),
                compute_output: pair(count, 0),
            })
            .collect(),
        memory_usage: Vec::new(),
    }
}

type InferStream =
    Pin<Box<dyn Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(
        &self,
        req: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        logged("ServerLive", req, |_| async {
            Ok(pb::ServerLiveResponse { live: true })
        })
        .await
    }

    async fn server_ready(
        &self,
        req: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        let ready = !self.shared.engine.models().is_empty();
        logged("ServerReady", req, |_| async move {
            Ok(pb::ServerReadyResponse { ready })
        })
        .await
    }

    /// An unknown model is OK with `ready: false`, as Triton answers (tritonclient then
    /// returns False instead of raising).
    async fn model_ready(
        &self,
        req: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let engine = Arc::clone(&self.shared.engine);
        logged("ModelReady", req, |r| async move {
            let ready = engine.get(&r.name, version_of(&r.version)).is_ok();
            Ok(pb::ModelReadyResponse { ready })
        })
        .await
    }

    async fn server_metadata(
        &self,
        req: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        logged("ServerMetadata", req, |_| async {
            Ok(pb::ServerMetadataResponse {
                name: "slipway".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: crate::EXTENSIONS.iter().map(|e| (*e).to_string()).collect(),
            })
        })
        .await
    }

    async fn model_metadata(
        &self,
        req: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let engine = Arc::clone(&self.shared.engine);
        logged("ModelMetadata", req, |r| async move {
            let served = engine
                .get(&r.name, version_of(&r.version))
                .map_err(status_of)?;
            let sig = served.signature();
            let tensors = |list: &[slipway_core::TensorSpec]| {
                list.iter()
                    .map(|t| pb::model_metadata_response::TensorMetadata {
                        name: t.name.clone(),
                        datatype: t.datatype.as_str().into(),
                        shape: t.shape.clone(),
                    })
                    .collect()
            };
            Ok(pb::ModelMetadataResponse {
                name: served.name.clone(),
                versions: vec![served.version.clone()],
                platform: served.platform().into(),
                inputs: tensors(&sig.inputs),
                outputs: tensors(&sig.outputs),
            })
        })
        .await
    }

    async fn model_infer(
        &self,
        req: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let this = self.clone();
        logged("ModelInfer", req, |r| async move { this.infer(r).await }).await
    }

    type ModelStreamInferStream = InferStream;

    /// One response per request, in order. A failed request gets a response with
    /// `error_message` set and the stream stays open, as Triton does.
    async fn model_stream_infer(
        &self,
        req: Request<tonic::Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<InferStream>, Status> {
        let mut incoming = req.into_inner();
        let this = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let next = match incoming.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                };
                let start = Instant::now();
                let id = next.id.clone();
                let result = this.infer(next).await;
                log_rpc("ModelStreamInfer", &id, start, &result);
                let answer = match result {
                    Ok(r) => pb::ModelStreamInferResponse {
                        error_message: String::new(),
                        infer_response: Some(r),
                    },
                    Err(s) => pb::ModelStreamInferResponse {
                        error_message: s.message().to_string(),
                        infer_response: Some(pb::ModelInferResponse {
                            id,
                            ..Default::default()
                        }),
                    },
                };
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn model_statistics(
        &self,
        req: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        let engine = Arc::clone(&self.shared.engine);
        logged("ModelStatistics", req, |r| async move {
            let model_stats = if r.name.is_empty() {
                engine.models().iter().map(|m| stats_pb(m)).collect()
            } else {
                let served = engine
                    .get(&r.name, version_of(&r.version))
                    .map_err(status_of)?;
                vec![stats_pb(&served)]
            };
            Ok(pb::ModelStatisticsResponse { model_stats })
        })
        .await
    }

    async fn repository_index(
        &self,
        req: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        let engine = Arc::clone(&self.shared.engine);
        logged("RepositoryIndex", req, |_| async move {
            Ok(pb::RepositoryIndexResponse {
                models: engine
                    .models()
                    .iter()
                    .map(|m| pb::repository_index_response::ModelIndex {
                        name: m.name.clone(),
                        version: m.version.clone(),
                        state: "READY".into(),
                        reason: String::new(),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn repository_model_load(
        &self,
        req: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        let shared = Arc::clone(&self.shared);
        logged("RepositoryModelLoad", req, |r| async move {
            crate::load_model(&shared, &r.model_name).await?;
            Ok(pb::RepositoryModelLoadResponse {})
        })
        .await
    }

    async fn repository_model_unload(
        &self,
        req: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        let shared = Arc::clone(&self.shared);
        logged("RepositoryModelUnload", req, |r| async move {
            crate::unload_model(&shared, &r.model_name)?;
            Ok(pb::RepositoryModelUnloadResponse {})
        })
        .await
    }
}
