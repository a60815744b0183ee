//! The gRPC server (with REST beside it) started on ephemeral ports and spoken to with a tonic
//! client generated from the same proto: every RPC, raw and typed contents, the datatypes that
//! convert exactly, bad requests, streams, the size limit and the shared metrics.

use std::sync::Arc;

use slipway_core::{Tensor, TensorData};
use slipway_engine::Engine;
use slipway_server::grpc::pb;
use slipway_server::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::Code;
use tonic::transport::Channel;

mod common;

/// The server, with a gRPC client connected to it.
struct Server {
    http: String,
    client: GrpcInferenceServiceClient<Channel>,
    engine: Arc<Engine>,
    _server: common::Server,
}

async fn start() -> Server {
    let server = common::start().await;
    let channel = Channel::from_shared(server.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = GrpcInferenceServiceClient::new(channel).max_decoding_message_size(usize::MAX);
    Server {
        http: server.http.clone(),
        client,
        engine: Arc::clone(&server.engine),
        _server: server,
    }
}

use slipway_testkit::credit_tensors;

fn input_of(t: &Tensor, datatype: &str) -> pb::model_infer_request::InferInputTensor {
    pb::model_infer_request::InferInputTensor {
        name: t.name.clone(),
        datatype: datatype.into(),
        shape: t.shape.iter().map(|&d| d as i64).collect(),
        ..Default::default()
    }
}

/// A request with every input in `raw_input_contents`, as tritonclient sends.
fn raw_request(model: &str, tensors: &[Tensor]) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: model.into(),
        id: "req-1".into(),
        inputs: tensors
            .iter()
            .map(|t| input_of(t, t.data.datatype().as_str()))
            .collect(),
        raw_input_contents: tensors
            .iter()
            .map(|t| slipway_server::oip::binary_block(&t.data))
            .collect(),
        ..Default::default()
    }
}

/// A request with typed `contents`, as hand-written clients send.
fn typed_request(model: &str, tensors: &[Tensor]) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: model.into(),
        inputs: tensors
            .iter()
            .map(|t| {
                let mut c = pb::InferTensorContents::default();
                match &t.data {
                    TensorData::Fp64(v) => c.fp64_contents = v.clone(),
                    TensorData::Fp32(v) => c.fp32_contents = v.clone(),
                    TensorData::Int64(v) => c.int64_contents = v.clone(),
                    TensorData::Bool(v) => c.bool_contents = v.clone(),
                    TensorData::Bytes(v) => c.bytes_contents = v.clone(),
                }
                pb::model_infer_request::InferInputTensor {
                    contents: Some(c),
                    ..input_of(t, t.data.datatype().as_str())
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// A response's outputs decoded from `raw_output_contents`.
fn outputs(resp: &pb::ModelInferResponse) -> Vec<Tensor> {
    assert_eq!(resp.outputs.len(), resp.raw_output_contents.len());
    resp.outputs
        .iter()
        .zip(&resp.raw_output_contents)
        .map(|(o, raw)| {
            let shape: Vec<usize> = o.shape.iter().map(|&d| d as usize).collect();
            let dt = slipway_core::DataType::parse(&o.datatype).unwrap();
            let data =
                slipway_server::oip::binary_data(&o.name, dt, raw, shape.iter().product()).unwrap();
            Tensor {
                name: o.name.clone(),
                shape,
                data,
            }
        })
        .collect()
}

fn cancer_rows(rows: usize) -> Vec<f32> {
    (0..rows * 30)
        .map(|i| ((i * 7919) % 1000) as f32 / 10.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metadata() {
    let mut s = start().await;
    let c = &mut s.client;
    assert!(
        c.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = |name: &str, version: &str| pb::ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        c.model_ready(ready("credit", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        c.model_ready(ready("credit", "3"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    // Unknown models and versions are OK with ready=false, as Triton answers.
    assert!(
        !c.model_ready(ready("credit", "9"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("nope", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );

    let meta = c
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "slipway");
    assert!(meta.extensions.contains(&"model_repository".to_string()));

    let m = c
        .model_metadata(pb::ModelMetadataRequest {
            name: "credit".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.versions, vec!["3"]);
    assert_eq!(m.platform, "slipway_native");
    let sig = s.engine.get("credit", None).unwrap().signature().clone();
    assert_eq!(m.inputs.len(), sig.inputs.len());
    assert_eq!(m.inputs[1].name, sig.inputs[1].name);
    assert_eq!(m.inputs[1].datatype, "FP64");
    assert_eq!(m.inputs[1].shape, vec![-1]);
    assert_eq!(m.outputs[0].name, "probability");

    let err = c
        .model_metadata(pb::ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_typed_inference_match_the_model() {
    let mut s = start().await;
    let tensors = credit_tensors();
    let want = s
        .engine
        .get("credit", None)
        .unwrap()
        .model
        .infer(&tensors)
        .unwrap();

    let raw = s
        .client
        .model_infer(raw_request("credit", &tensors))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(raw.model_name, "credit");
    assert_eq!(raw.model_version, "3");
    assert_eq!(raw.id, "req-1");
    assert_eq!(outputs(&raw), want);

    // Typed contents get the same answer, still in raw_output_contents.
    let typed = s
        .client
        .model_infer(typed_request("credit", &tensors))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outputs(&typed), want);

    // Requested outputs come back alone, in the order asked.
    let mut req = raw_request("credit", &tensors);
    req.outputs = vec![pb::model_infer_request::InferRequestedOutputTensor {
        name: "label".into(),
        ..Default::default()
    }];
    let only = s.client.model_infer(req).await.unwrap().into_inner();
    assert_eq!(outputs(&only), vec![want[1].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datatypes_that_convert_exactly_are_accepted() {
    let mut s = start().await;
    let model = Arc::clone(&s.engine.get("cancer", None).unwrap().model);
    let x = cancer_rows(4);
    // FP16 on the wire to the FP32 input: each value rounded to half precision.
    let halves: Vec<u8> = x
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let rounded: Vec<f32> = x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
    let want = model
        .infer(&[Tensor {
            name: "X".into(),
            shape: vec![4, 30],
            data: TensorData::Fp32(rounded),
        }])
        .unwrap();
    let req = pb::ModelInferRequest {
        model_name: "cancer".into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "X".into(),
            datatype: "FP16".into(),
            shape: vec![4, 30],
            ..Default::default()
        }],
        raw_input_contents: vec![halves],
        ..Default::default()
    };
    let got = s.client.model_infer(req).await.unwrap().into_inner();
    assert_eq!(outputs(&got), want);

    // Typed INT16 contents to the FP32 input (exact): the same as the FP32 values.
    let ints: Vec<i32> = (0..120).map(|i| (i * 37) % 500).collect();
    let want = model
        .infer(&[Tensor {
            name: "X".into(),
            shape: vec![4, 30],
            data: TensorData::Fp32(ints.iter().map(|&i| i as f32).collect()),
        }])
        .unwrap();
    let req = pb::ModelInferRequest {
        model_name: "cancer".into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "X".into(),
            datatype: "INT16".into(),
            shape: vec![4, 30],
            contents: Some(pb::InferTensorContents {
                int_contents: ints,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let got = s.client.model_infer(req).await.unwrap().into_inner();
    assert_eq!(outputs(&got), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_invalid_argument_and_the_server_keeps_serving() {
    let mut s = start().await;
    let tensors = credit_tensors();
    let mut cases: Vec<(pb::ModelInferRequest, Code, &str)> = Vec::new();

    let mut r = raw_request("nope", &tensors);
    r.model_version = String::new();
    cases.push((r, Code::NotFound, "nope"));

    let mut r = raw_request("credit", &tensors);
    r.raw_input_contents.pop();
    cases.push((r, Code::InvalidArgument, "raw_input_contents"));

    let mut r = raw_request("credit", &tensors);
    r.raw_input_contents[1].truncate(5);
    cases.push((r, Code::InvalidArgument, "bytes of FP64 data"));

    let mut r = typed_request("credit", &tensors);
    r.raw_input_contents = raw_request("credit", &tensors).raw_input_contents;
    cases.push((r, Code::InvalidArgument, "must not be specified"));

    let mut r = raw_request("credit", &tensors);
    r.inputs[1].datatype = "INT64".into();
    cases.push((r, Code::InvalidArgument, "must be FP64"));

    let mut r = raw_request("credit", &tensors);
    r.inputs[1].datatype = "FLOAT".into();
    cases.push((r, Code::InvalidArgument, "unknown datatype"));

    let mut r = raw_request("credit", &tensors);
    r.inputs[0].shape = vec![-3];
    cases.push((r, Code::InvalidArgument, "negative"));

    let mut r = raw_request("credit", &tensors);
    r.inputs[3].name = "purpse".into();
    cases.push((r, Code::InvalidArgument, "unknown input `purpse`"));

    let mut r = raw_request("credit", &tensors);
    r.outputs = vec![pb::model_infer_request::InferRequestedOutputTensor {
        name: "score".into(),
        ..Default::default()
    }];
    cases.push((r, Code::InvalidArgument, "no output `score`"));

    // An infinity in a float input.
    let mut t = tensors.clone();
    if let TensorData::Fp64(v) = &mut t[1].data {
        v[0] = f64::INFINITY;
    }
    cases.push((
        raw_request("credit", &t),
        Code::InvalidArgument,
        "is infinite",
    ));

    // A UINT8 value outside its range in typed contents.
    cases.push((
        pb::ModelInferRequest {
            model_name: "cancer".into(),
            inputs: vec![pb::model_infer_request::InferInputTensor {
                name: "X".into(),
                datatype: "UINT8".into(),
                shape: vec![1, 30],
                contents: Some(pb::InferTensorContents {
                    uint_contents: vec![300; 30],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        Code::InvalidArgument,
        "outside UINT8's range",
    ));

    for (req, code, text) in cases {
        let err = s.client.model_infer(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{}", err.message());
        assert!(err.message().contains(text), "{text}: {}", err.message());
    }
    // Still serving.
    s.client
        .model_infer(raw_request("credit", &tensors))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_answers_each_request_and_survives_a_bad_one() {
    let mut s = start().await;
    let tensors = credit_tensors();
    let mut requests = Vec::new();
    for i in 0..3 {
        let mut r = raw_request("credit", &tensors);
        r.id = format!("s{i}");
        if i == 1 {
            r.inputs[1].datatype = "INT64".into();
        }
        requests.push(r);
    }
    let mut answers = s
        .client
        .model_stream_infer(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(a) = answers.message().await.unwrap() {
        got.push(a);
    }
    assert_eq!(got.len(), 3);
    let resp = |a: &pb::ModelStreamInferResponse| a.infer_response.clone().unwrap();
    assert_eq!(resp(&got[0]).id, "s0");
    assert!(got[0].error_message.is_empty());
    assert_eq!(resp(&got[1]).id, "s1");
    assert!(
        got[1].error_message.contains("must be FP64"),
        "{}",
        got[1].error_message
    );
    assert_eq!(resp(&got[2]).id, "s2");
    assert_eq!(outputs(&resp(&got[2])), outputs(&resp(&got[0])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_tonics_default_4_mib_are_accepted() {
    let mut s = start().await;
    let rows = 50_000; // 50,000 × 30 × 4 bytes = 6 MB in, 50,000 rows of answers out.
    let req = || {
        raw_request(
            "cancer",
            &[Tensor {
                name: "X".into(),
                shape: vec![rows, 30],
                data: TensorData::Fp32(cancer_rows(rows)),
            }],
        )
    };
    // More rows than the model's queue takes (2,048 by default): refused before decoding.
    let err = s.client.model_infer(req()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("split the request"), "{err:?}");
    // With room for them, the 6 MB message is taken whole.
    let cancer = s.engine.get("cancer", None).unwrap();
    let mut config = s.engine.model_config("cancer");
    config.queue_capacity = 100_000;
    s.engine.set_model_config("cancer", config);
    s.engine.add(
        "cancer",
        "1",
        slipway_runtime::Loaded {
            manifest: cancer.manifest.clone(),
            model: std::sync::Arc::clone(&cancer.model),
            onnx: None,
        },
    );
    let got = s.client.model_infer(req()).await.unwrap().into_inner();
    assert_eq!(outputs(&got)[0].shape[0], rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_repository_and_shared_metrics() {
    let mut s = start().await;
    let tensors = credit_tensors();
    for _ in 0..2 {
        s.client
            .model_infer(raw_request("credit", &tensors))
            .await
            .unwrap();
    }
    let stats = s
        .client
        .model_statistics(pb::ModelStatisticsRequest {
            name: "credit".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let credit = &stats.model_stats[0];
    assert_eq!(credit.execution_count, 2);
    assert_eq!(credit.inference_count, 2 * tensors[0].shape[0] as u64);
    assert_eq!(
        credit
            .inference_stats
            .as_ref()
            .unwrap()
            .success
            .as_ref()
            .unwrap()
            .count,
        2
    );
    let all = s
        .client
        .model_statistics(pb::ModelStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.model_stats.len(), 2);

    // REST's /metrics counts the gRPC requests under protocol="grpc".
    let text = reqwest::get(format!("{}/metrics", s.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("slipway_requests_total")
            && l.contains("protocol=\"grpc\"")
            && l.contains("outcome=\"ok\"")
            && l.ends_with(" 2")),
        "{text}"
    );

    let index = s
        .client
        .repository_index(pb::RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<&str> = index.models.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["cancer", "credit"]);
    assert!(index.models.iter().all(|m| m.state == "READY"));

    // No registry behind this server: load is unimplemented, and says why.
    let err = s
        .client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "credit".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("--registry"));

    s.client
        .repository_model_unload(pb::RepositoryModelUnloadRequest {
            model_name: "cancer".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = s
        .client
        .repository_model_unload(pb::RepositoryModelUnloadRequest {
            model_name: "cancer".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        !s.client
            .model_ready(pb::ModelReadyRequest {
                name: "cancer".into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .ready
    );
}
