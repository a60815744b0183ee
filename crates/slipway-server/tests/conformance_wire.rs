//! Every exporter model of the runtime's conformance suite, served and called over the wire,
//! REST with binary tensors and gRPC with raw contents: the answers must be onnxruntime's
//! (1e-5 relative, labels exact), as in the in-process suite.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value as Json, json};
use slipway_core::{Tensor, TensorData};
use slipway_engine::Engine;
use slipway_server::grpc::pb;
use slipway_server::oip;

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/cases")
}

fn tensor(j: &Json) -> Tensor {
    let shape: Vec<usize> = j["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let d = j["data"].as_array().unwrap();
    let f = |v: &Json| v.as_f64().unwrap_or(f64::NAN);
    let data = match j["datatype"].as_str().unwrap() {
        "FP32" => TensorData::Fp32(d.iter().map(|v| f(v) as f32).collect()),
        "FP64" => TensorData::Fp64(d.iter().map(f).collect()),
        "INT64" => TensorData::Int64(d.iter().map(|v| v.as_i64().unwrap()).collect()),
        "BYTES" => TensorData::Bytes(
            d.iter()
                .map(|v| v.as_str().unwrap().as_bytes().to_vec())
                .collect(),
        ),
        other => panic!("{other}"),
    };
    Tensor {
        name: j["name"].as_str().unwrap().to_string(),
        shape,
        data,
    }
}

fn close(a: f64, b: f64) -> bool {
    let d = (a - b).abs();
    (a.is_nan() && b.is_nan()) || d <= 1e-5 * b.abs() || (b.abs() < 1e-2 && d <= 1.2e-7)
}

/// The outputs the fixture records that differ from `got` (name and raw block per output).
fn differences(name: &str, fixture: &Json, got: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (out, block) in got {
        let Some(want) = fixture["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == out.as_str())
        else {
            continue;
        };
        let want = tensor(want);
        let count = want.shape.iter().product();
        let got = oip::binary_data("out", want.data.datatype(), block, count).unwrap();
        let same = match (&got, &want.data) {
            (TensorData::Fp32(a), TensorData::Fp32(b)) => a
                .iter()
                .zip(b)
                .all(|(x, y)| close(f64::from(*x), f64::from(*y))),
            (TensorData::Fp64(a), TensorData::Fp64(b)) => {
                a.iter().zip(b).all(|(x, y)| close(*x, *y))
            }
            (a, b) => a == b,
        };
        if !same {
            failures.push(format!("{name}/{out}"));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exporter_model_answers_over_the_wire_as_onnxruntime_does() {
    let engine = Arc::new(Engine::new(2));
    let mut fixtures = Vec::new();
    for entry in std::fs::read_dir(cases()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.extension().is_none_or(|e| e != "json")
            || name.starts_with("op_")
            || name.starts_with("native_")
        {
            continue;
        }
        let bytes = std::fs::read(path.with_extension("onnx")).unwrap();
        let model =
            slipway_runtime::OnnxModel::from_bytes(&bytes, slipway_runtime::EngineChoice::Auto)
                .unwrap();
        let manifest: slipway_core::Manifest = serde_json::from_value(json!({
            "format_version": 1, "name": name, "task": "regression", "framework": "onnx",
            "target": {"name": "y"}, "signature": slipway_core::Model::signature(&model), "features": [],
            "model": {"kind": "onnx", "layers": []}, "payload": {"file": "model.onnx", "sha256": ""},
            "metrics": {}, "params": null,
            "lineage": {"dataset_sha256": "", "dataset": "", "rows": 0, "rows_dropped": 0, "split": [0, 0, 0], "seed": 0, "slipway_version": "0", "created_at": ""}
        }))
        .unwrap();
        let info = model.info.clone();
        engine.add(
            &name,
            "1",
            slipway_runtime::Loaded {
                manifest,
                model: Arc::new(model),
                onnx: Some(info),
            },
        );
        fixtures.push((
            name,
            serde_json::from_slice::<Json>(&std::fs::read(&path).unwrap()).unwrap(),
        ));
    }
    assert!(
        fixtures.len() >= 22,
        "only {} exporter models",
        fixtures.len()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let grpc_url = format!("http://{}", grpc.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(slipway_server::serve(
        slipway_server::ServerConfig {
            http: listener,
            grpc: Some(grpc),
            drain: std::time::Duration::from_secs(5),
            v1_unknown_columns: slipway_server::UnknownColumns::default(),
            auth: Default::default(),
        },
        Arc::clone(&engine),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let channel = tonic::transport::Channel::from_shared(grpc_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc_client =
        pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
    let mut failures = Vec::new();
    for (name, fixture) in &fixtures {
        let inputs: Vec<Tensor> = fixture["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor)
            .collect();
        let mut header_inputs = Vec::new();
        let mut blocks = Vec::new();
        for t in &inputs {
            let block = oip::binary_block(&t.data);
            header_inputs.push(json!({"name": t.name, "datatype": t.data.datatype().as_str(), "shape": t.shape, "parameters": {"binary_data_size": block.len()}}));
            blocks.extend(block);
        }
        let header = serde_json::to_vec(
            &json!({"inputs": header_inputs, "parameters": {"binary_data_output": true}}),
        )
        .unwrap();
        let mut body = header.clone();
        body.extend(blocks);
        let r = client
            .post(format!("{url}/v2/models/{name}/infer"))
            .header("Inference-Header-Content-Length", header.len().to_string())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{name}");
        let json_len: usize = r.headers()["inference-header-content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = r.bytes().await.unwrap();
        let head: Json = serde_json::from_slice(&bytes[..json_len]).unwrap();
        let mut offset = json_len;
        let mut rest_outputs = Vec::new();
        for out in head["outputs"].as_array().unwrap() {
            let size = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
            rest_outputs.push((
                out["name"].as_str().unwrap().to_string(),
                bytes[offset..offset + size].to_vec(),
            ));
            offset += size;
        }
        failures.extend(differences(&format!("rest:{name}"), fixture, &rest_outputs));

        // gRPC, raw contents in and out.
        let request = pb::ModelInferRequest {
            model_name: name.clone(),
            inputs: inputs
                .iter()
                .map(|t| pb::model_infer_request::InferInputTensor {
                    name: t.name.clone(),
                    datatype: t.data.datatype().as_str().into(),
                    shape: t.shape.iter().map(|&d| d as i64).collect(),
                    ..Default::default()
                })
                .collect(),
            raw_input_contents: inputs.iter().map(|t| oip::binary_block(&t.data)).collect(),
            ..Default::default()
        };
        let answer = grpc_client.model_infer(request).await.unwrap().into_inner();
        let grpc_outputs: Vec<(String, Vec<u8>)> = answer
            .outputs
            .iter()
            .map(|o| o.name.clone())
            .zip(answer.raw_output_contents)
            .collect();
        assert!(!rest_outputs.is_empty(), "{name}: no outputs");
        assert_eq!(grpc_outputs.len(), rest_outputs.len(), "{name}");
        failures.extend(differences(&format!("grpc:{name}"), fixture, &grpc_outputs));
    }
    let _ = stop.send(());
    assert!(
        failures.is_empty(),
        "over the wire, these differ from onnxruntime: {failures:?}"
    );
}
