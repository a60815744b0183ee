//! The Open Inference Protocol v2 over gRPC: `inference.GRPCInferenceService` as Triton
//! defines it, so `tritonclient.grpc` and KServe's `InferenceGRPCClient` work unchanged.
//! Same engine, checks, metrics and statistics as REST; outputs always go back in
//! `raw_output_contents` (tritonclient reads nothing else for numeric types).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

use crate::auth::{Need, Principal};
use crate::describe::{Metadata, Stats};
use crate::pipeline::{self, Decoded};
use crate::{ApiError, Shared};
use slipway_registry::Role;

mod codec;
pub mod gate;
pub use codec::decode_inputs;

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

/// tonic refuses a message over the decoding limit with OUT_OF_RANGE before any handler runs;
/// gRPC's own implementations (and clients' retry policies) call that RESOURCE_EXHAUSTED, as
/// REST calls it 413. This rewrites that one refusal's status, in the trailers-only response
/// tonic sends for it.
pub fn too_large_is_resource_exhausted<B>(
    mut r: axum::http::Response<B>,
) -> axum::http::Response<B> {
    let h = r.headers_mut();
    let too_large = h.get("grpc-status").is_some_and(|s| s == "11")
        && h.get("grpc-message").is_some_and(|m| {
            let has = |needle: &[u8]| m.as_bytes().windows(needle.len()).any(|w| w == needle);
            has(b"length%20too%20large") || has(b"length too large")
        });
    if too_large {
        h.insert(
            "grpc-status",
            axum::http::HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    r
}

fn status_of(e: impl Into<ApiError>) -> Status {
    e.into().into()
}

fn version_of(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

impl Grpc {
    /// One ModelInfer, from request to response, with metrics and statistics.
    async fn infer(&self, req: pb::ModelInferRequest) -> Result<pb::ModelInferResponse, Status> {
        let st = &self.shared;
        let served = st
            .lookup(&req.model_name, version_of(&req.model_version))
            .map_err(Status::from)?;
        let decode = |(), claim: &mut pipeline::Claim<'_>| {
            decode_inputs(&req, claim).map(|(inputs, wire)| Decoded {
                inputs,
                wire,
                rest: (),
            })
        };
        let encode = |outputs, ()| codec::encode(&served, req.id.clone(), &req.outputs, outputs);
        pipeline::infer(st, &served, "grpc", pipeline::Ready(()), decode, encode)
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
            if let Some(detail) = std::error::Error::source(s) {
                tracing::error!(
                    request_id = rid,
                    rpc,
                    grpc_status = code,
                    micros,
                    error = %detail,
                    "rpc"
                );
            } else if matches!(s.code(), Code::InvalidArgument | Code::NotFound) {
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
/// Runs one RPC: the key check for what `need` says the message needs (health needs none),
/// then `f`, logged with its request id.
async fn logged<T, R, F>(
    rpc: &str,
    shared: &Shared,
    req: Request<T>,
    need: impl FnOnce(&T) -> Need<'_>,
    f: impl FnOnce(T) -> F,
) -> Result<Response<R>, Status>
where
    F: std::future::Future<Output = Result<R, Status>>,
{
    logged_as(rpc, shared, req, need, |r, _| f(r)).await
}

/// As [`logged`], handing `f` the caller too: the key the call was made with and the client's
/// address (for the audit log).
async fn logged_as<T, R, F>(
    rpc: &str,
    shared: &Shared,
    req: Request<T>,
    need: impl FnOnce(&T) -> Need<'_>,
    f: impl FnOnce(T, (Option<Principal>, String)) -> F,
) -> Result<Response<R>, Status>
where
    F: std::future::Future<Output = Result<R, Status>>,
{
    let start = Instant::now();
    let rid = request_id(&req);
    let presented = req
        .metadata()
        .get("authorization")
        .map(|v| v.as_bytes().to_vec());
    let principal = match shared.auth.check(presented.as_deref(), need(req.get_ref())) {
        Ok(p) => p,
        Err(e) => {
            shared.metrics.auth_refused(e.code());
            let refused: Result<R, Status> = Err(e.into());
            log_rpc(rpc, &rid, start, &refused);
            return refused.map(Response::new);
        }
    };
    let from = req
        .remote_addr()
        .map_or_else(|| "an unknown address".into(), |a| a.to_string());
    let result = f(req.into_inner(), (principal, from)).await;
    log_rpc(rpc, &rid, start, &result);
    let mut response = Response::new(result?);
    if let Ok(v) = rid.parse() {
        response.metadata_mut().insert("x-request-id", v);
    }
    Ok(response)
}

fn stats_pb(m: &slipway_engine::Served) -> pb::ModelStatistics {
    let s = Stats::of(m);
    let pair = |d: crate::describe::Duration| {
        Some(pb::StatisticDuration {
            count: d.count,
            ns: d.ns,
        })
    };
    let i = &s.inference_stats;
    pb::ModelStatistics {
        name: s.name,
        version: s.version,
        last_inference: s.last_inference,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(pb::InferStatistics {
            success: pair(i.success),
            fail: pair(i.fail),
            queue: pair(i.queue),
            compute_input: pair(i.compute_input),
            compute_infer: pair(i.compute_infer),
            compute_output: pair(i.compute_output),
            cache_hit: pair(crate::describe::Duration { count: 0, ns: 0 }),
            cache_miss: pair(crate::describe::Duration { count: 0, ns: 0 }),
        }),
        batch_stats: s
            .batch_stats
            .into_iter()
            .map(|b| pb::InferBatchStatistics {
                batch_size: b.batch_size as u64,
                compute_input: pair(b.compute_input),
                compute_infer: pair(b.compute_infer),
                compute_output: pair(b.compute_output),
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
        logged(
            "ServerLive",
            &self.shared,
            req,
            |_| Need::Open,
            |_| async { Ok(pb::ServerLiveResponse { live: true }) },
        )
        .await
    }

    async fn server_ready(
        &self,
        req: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        let engine = &self.shared.engine;
        let ready = engine.repository().readiness(engine).is_ok();
        logged(
            "ServerReady",
            &self.shared,
            req,
            |_| Need::Open,
            |_| async move { Ok(pb::ServerReadyResponse { ready }) },
        )
        .await
    }

    /// An unknown model is OK with `ready: false`, as Triton answers (tritonclient then
    /// returns False instead of raising).
    async fn model_ready(
        &self,
        req: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let engine = Arc::clone(&self.shared.engine);
        // A model outside the key's scope reads as an unknown one does here: not ready.
        logged_as(
            "ModelReady",
            &self.shared,
            req,
            |_| Need::Role(Role::Infer),
            |r, (who, _)| async move {
                let visible = who.as_ref().is_none_or(|p| p.covers(&r.name));
                let ready = visible && engine.get(&r.name, version_of(&r.version)).is_ok();
                Ok(pb::ModelReadyResponse { ready })
            },
        )
        .await
    }

    async fn server_metadata(
        &self,
        req: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        logged(
            "ServerMetadata",
            &self.shared,
            req,
            |_| Need::Key,
            |_| async {
                Ok(pb::ServerMetadataResponse {
                    name: "slipway".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    extensions: crate::EXTENSIONS.iter().map(|e| (*e).to_string()).collect(),
                })
            },
        )
        .await
    }

    async fn model_metadata(
        &self,
        req: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let shared = Arc::clone(&self.shared);
        logged(
            "ModelMetadata",
            &self.shared,
            req,
            |r| Need::Model(Role::Infer, &r.name),
            |r| async move {
                let served = shared
                    .lookup(&r.name, version_of(&r.version))
                    .map_err(Status::from)?;
                let m = Metadata::of(&served);
                let tensors = |list: Vec<crate::describe::TensorMeta>| {
                    list.into_iter()
                        .map(|t| pb::model_metadata_response::TensorMetadata {
                            name: t.name,
                            datatype: t.datatype.into(),
                            shape: t.shape,
                        })
                        .collect()
                };
                Ok(pb::ModelMetadataResponse {
                    name: m.name,
                    versions: m.versions,
                    platform: m.platform.into(),
                    inputs: tensors(m.inputs),
                    outputs: tensors(m.outputs),
                })
            },
        )
        .await
    }

    async fn model_infer(
        &self,
        req: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let this = self.clone();
        logged(
            "ModelInfer",
            &self.shared,
            req,
            |r| Need::Model(Role::Infer, &r.model_name),
            |r| async move { this.infer(r).await },
        )
        .await
    }

    type ModelStreamInferStream = InferStream;

    /// One response per request, in order. A failed request gets a response with
    /// `error_message` set and the stream stays open, as Triton does.
    async fn model_stream_infer(
        &self,
        req: Request<tonic::Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<InferStream>, Status> {
        let presented = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes().to_vec());
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
                // Each message names its model: each is checked.
                let allowed = this
                    .shared
                    .auth
                    .check(
                        presented.as_deref(),
                        Need::Model(Role::Infer, &next.model_name),
                    )
                    .map_err(|e| {
                        this.shared.metrics.auth_refused(e.code());
                        Status::from(e)
                    });
                let result = match allowed {
                    Ok(_) => this.infer(next).await,
                    Err(s) => Err(s),
                };
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
        logged(
            "ModelStatistics",
            &self.shared,
            req,
            |r| {
                if r.name.is_empty() {
                    Need::Role(Role::Monitor)
                } else {
                    Need::Model(Role::Monitor, &r.name)
                }
            },
            |r| async move {
                let model_stats = if r.name.is_empty() {
                    engine.models().iter().map(|m| stats_pb(m)).collect()
                } else {
                    let served = engine
                        .get(&r.name, version_of(&r.version))
                        .map_err(status_of)?;
                    vec![stats_pb(&served)]
                };
                Ok(pb::ModelStatisticsResponse { model_stats })
            },
        )
        .await
    }

    async fn repository_index(
        &self,
        req: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        let shared = Arc::clone(&self.shared);
        logged(
            "RepositoryIndex",
            &self.shared,
            req,
            |_| Need::Role(Role::Deploy),
            |_| async move {
                Ok(pb::RepositoryIndexResponse {
                    models: crate::repository::index(&shared)
                        .into_iter()
                        .map(|m| pb::repository_index_response::ModelIndex {
                            name: m.name,
                            version: m.version,
                            state: m.state.into(),
                            reason: m.reason,
                        })
                        .collect(),
                })
            },
        )
        .await
    }

    async fn repository_model_load(
        &self,
        req: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        let shared = Arc::clone(&self.shared);
        logged_as(
            "RepositoryModelLoad",
            &self.shared,
            req,
            |r| Need::Model(Role::Deploy, &r.model_name),
            |r, (who, from)| async move {
                crate::repository::load(&shared, &r.model_name).await?;
                crate::repository::audit(&shared, who.as_ref(), from, "serve.load", &r.model_name)
                    .await;
                Ok(pb::RepositoryModelLoadResponse {})
            },
        )
        .await
    }

    async fn repository_model_unload(
        &self,
        req: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        let shared = Arc::clone(&self.shared);
        logged_as(
            "RepositoryModelUnload",
            &self.shared,
            req,
            |r| Need::Model(Role::Deploy, &r.model_name),
            |r, (who, from)| async move {
                crate::repository::unload(&shared, &r.model_name)?;
                crate::repository::audit(
                    &shared,
                    who.as_ref(),
                    from,
                    "serve.unload",
                    &r.model_name,
                )
                .await;
                Ok(pb::RepositoryModelUnloadResponse {})
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_over_size_message_is_resource_exhausted() {
        let refused = Status::out_of_range(
            "Error, decoded message length too large: found 70000000 bytes, the limit is: 67108864 bytes",
        );
        let mapped = too_large_is_resource_exhausted(refused.into_http::<()>());
        let back = Status::from_header_map(mapped.headers()).unwrap();
        assert_eq!(back.code(), Code::ResourceExhausted);
        assert!(back.message().contains("too large"));
        // Any other OUT_OF_RANGE is left as it is.
        let other =
            too_large_is_resource_exhausted(Status::out_of_range("past the end").into_http::<()>());
        assert_eq!(
            Status::from_header_map(other.headers()).unwrap().code(),
            Code::OutOfRange
        );
    }
}
