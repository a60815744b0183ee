//! The REST server started on an ephemeral port and spoken to over the wire with a real HTTP
//! client: the OIP v2 core (JSON and binary tensors), the V1 records API, and bad requests.

use std::sync::Arc;

use serde_json::{Value as Json, json};
use slipway_core::{Tensor, TensorData};
use slipway_engine::Engine;

mod common;
use common::{get, repo};

/// The server, with its REST address as `url`.
struct Server {
    url: String,
    engine: Arc<Engine>,
    _server: common::Server,
}

async fn start() -> Server {
    let server = common::start().await;
    Server {
        url: server.http.clone(),
        engine: Arc::clone(&server.engine),
        _server: server,
    }
}

async fn post(
    url: &str,
    body: Vec<u8>,
    header_len: Option<usize>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = reqwest::Client::new().post(url).body(body);
    if let Some(n) = header_len {
        req = req.header("Inference-Header-Content-Length", n.to_string());
    }
    let r = req.send().await.unwrap();
    (
        r.status().as_u16(),
        r.headers().clone(),
        r.bytes().await.unwrap().to_vec(),
    )
}

/// The credit fixture's rows as JSON inputs and as the tensors they decode to.
fn credit_inputs() -> (Vec<Json>, Vec<Tensor>) {
    let tensors = slipway_testkit::credit_tensors();
    let json_inputs = tensors
        .iter()
        .map(|t| {
            let (datatype, data) = match &t.data {
                TensorData::Fp64(v) => ("FP64", json!(v)),
                TensorData::Bytes(v) => (
                    "BYTES",
                    json!(
                        v.iter()
                            .map(|b| String::from_utf8_lossy(b))
                            .collect::<Vec<_>>()
                    ),
                ),
                other @ (TensorData::Bool(_) | TensorData::Int64(_) | TensorData::Fp32(_)) => {
                    panic!("the credit fixture has no {other:?} column")
                }
            };
            json!({"name": t.name, "datatype": datatype, "shape": t.shape, "data": data})
        })
        .collect();
    (json_inputs, tensors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metadata() {
    let s = start().await;
    assert_eq!(
        get(&format!("{}/v2/health/live", s.url)).await,
        (200, json!({"live": true}))
    );
    assert_eq!(
        get(&format!("{}/v2/health/ready", s.url)).await,
        (200, json!({"ready": true}))
    );
    let (status, meta) = get(&format!("{}/v2", s.url)).await;
    assert_eq!(status, 200);
    assert_eq!(meta["name"], "slipway");
    assert!(
        meta["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data"))
    );
    let (status, m) = get(&format!("{}/v2/models/credit", s.url)).await;
    assert_eq!(status, 200);
    assert_eq!(m["versions"], json!(["3"]));
    assert_eq!(m["platform"], "slipway_native");
    assert_eq!(
        m["outputs"][0],
        json!({"name": "probability", "datatype": "FP64", "shape": [-1]})
    );
    let (status, m) = get(&format!("{}/v2/models/cancer/versions/1", s.url)).await;
    assert_eq!(status, 200);
    assert_eq!(
        m["inputs"][0],
        json!({"name": "X", "datatype": "FP32", "shape": [-1, 30]})
    );
    // The metadata's example requests work as they are, in both protocols, for both models.
    for model in ["credit", "cancer"] {
        let (_, m) = get(&format!("{}/v2/models/{model}", s.url)).await;
        let example = &m["parameters"];
        let columns = example["columns"].as_array().unwrap();
        assert_eq!(columns.len(), if model == "credit" { 20 } else { 30 });
        let v2 = serde_json::to_vec(&example["v2"]).unwrap();
        let (status, _, bytes) =
            post(&format!("{}/v2/models/{model}/infer", s.url), v2, None).await;
        assert_eq!(status, 200, "{model}: {}", String::from_utf8_lossy(&bytes));
        let v1 = serde_json::to_vec(&example["v1"]).unwrap();
        let (status, _, bytes) =
            post(&format!("{}/v1/models/{model}:predict", s.url), v1, None).await;
        assert_eq!(status, 200, "{model}: {}", String::from_utf8_lossy(&bytes));
    }
    let (_, m) = get(&format!("{}/v2/models/credit", s.url)).await;
    let housing = m["parameters"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "housing")
        .unwrap();
    assert_eq!(housing["kind"], "category");
    assert_eq!(housing["categories"][0], housing["most_frequent"]);
    assert_eq!(
        m["parameters"]["v1"]["instances"][0]["housing"],
        housing["most_frequent"]
    );
    let age = m["parameters"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "age_in_years")
        .unwrap();
    assert_eq!(age["kind"], "number");
    assert!(age["min"].as_f64().unwrap() <= age["median"].as_f64().unwrap());
    assert!(age["median"].as_f64().unwrap() <= age["max"].as_f64().unwrap());
    assert_eq!(
        get(&format!("{}/v2/models/credit/ready", s.url)).await,
        (200, json!({"name": "credit", "ready": true}))
    );
    let (status, err) = get(&format!("{}/v2/models/nope/ready", s.url)).await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("nope"));
    let (status, _) = get(&format!("{}/v2/models/credit/versions/9", s.url)).await;
    assert_eq!(status, 404);
    let (status, err) = get(&format!("{}/v3/anything", s.url)).await;
    assert_eq!(
        (status, err),
        (404, json!({"error": "Not Found", "code": "not_found"}))
    );
    let (status, _, body) = post(&format!("{}/v2/health/live", s.url), vec![], None).await;
    assert_eq!(status, 405);
    assert_eq!(
        serde_json::from_slice::<Json>(&body).unwrap(),
        json!({"error": "Method Not Allowed", "code": "method_not_allowed"})
    );
    let (status, list) = get(&format!("{}/v2/models", s.url)).await;
    assert_eq!(
        (status, list),
        (200, json!({"models": ["cancer", "credit"]}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_inference_matches_the_model() {
    let s = start().await;
    let (inputs, tensors) = credit_inputs();
    let want = s
        .engine
        .get("credit", None)
        .unwrap()
        .model
        .infer(&tensors)
        .unwrap();
    let body = serde_json::to_vec(&json!({"id": "req-7", "inputs": inputs})).unwrap();
    let (status, headers, bytes) =
        post(&format!("{}/v2/models/credit/infer", s.url), body, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], "application/json");
    let r: Json = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(r["model_name"], "credit");
    assert_eq!(r["model_version"], "3");
    assert_eq!(r["id"], "req-7");
    let TensorData::Fp64(p) = &want[0].data else {
        panic!()
    };
    let got: Vec<f64> = r["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(&got, p, "probabilities travel exactly");
    assert_eq!(r["outputs"][1]["name"], "label");
    assert_eq!(r["outputs"][1]["datatype"], "BYTES");

    // Requested outputs: only those, in that order.
    let body =
        serde_json::to_vec(&json!({"inputs": inputs, "outputs": [{"name": "label"}]})).unwrap();
    let (status, _, bytes) = post(
        &format!("{}/v2/models/credit/versions/3/infer", s.url),
        body,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let r: Json = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(r["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(r["outputs"][0]["name"], "label");

    // A gzip or deflate (zlib) request body, as tritonclient's request compression sends.
    use std::io::Write;
    let plain = serde_json::to_vec(&json!({"inputs": inputs})).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&plain).unwrap();
    for (encoding, body) in [
        ("gzip", gz.finish().unwrap()),
        ("deflate", zlib.finish().unwrap()),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{}/v2/models/credit/infer", s.url))
            .header("Content-Encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{encoding}");
        let r: Json = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let got: Vec<f64> = r["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(&got, p, "{encoding}");
    }
    // An encoding the server cannot read is refused, not misread.
    let r = reqwest::Client::new()
        .post(format!("{}/v2/models/credit/infer", s.url))
        .header("Content-Encoding", "br")
        .body(plain)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_tensors_in_and_out() {
    let s = start().await;
    let rows = 5usize;
    let x: Vec<f32> = (0..rows * 30).map(|i| (i % 17) as f32 * 3.5).collect();
    let want = s
        .engine
        .get("cancer", None)
        .unwrap()
        .model
        .infer(&[Tensor {
            name: "X".into(),
            shape: vec![rows, 30],
            data: TensorData::Fp32(x.clone()),
        }])
        .unwrap();
    let block: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = serde_json::to_vec(&json!({
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [rows, 30], "parameters": {"binary_data_size": block.len()}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}, {"name": "label", "parameters": {"binary_data": true}}]
    }))
    .unwrap();
    let mut body = header.clone();
    body.extend_from_slice(&block);
    let (status, headers, bytes) = post(
        &format!("{}/v2/models/cancer/infer", s.url),
        body,
        Some(header.len()),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], "application/octet-stream");
    let json_len: usize = headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let r: Json = serde_json::from_slice(&bytes[..json_len]).unwrap();
    let p_size = r["outputs"][0]["parameters"]["binary_data_size"]
        .as_u64()
        .unwrap() as usize;
    let probs: Vec<f32> = bytes[json_len..json_len + p_size]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(TensorData::Fp32(probs), want[1].data);
    // BYTES come back length-prefixed.
    let mut rest = &bytes[json_len + p_size..];
    let mut labels = Vec::new();
    while !rest.is_empty() {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        labels.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    assert_eq!(TensorData::Bytes(labels), want[0].data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_and_the_server_keeps_serving() {
    let s = start().await;
    let url = format!("{}/v2/models/cancer/infer", s.url);
    let cases: Vec<(Vec<u8>, Option<usize>, u16, &str)> = vec![
        (b"{not json".to_vec(), None, 400, "not valid JSON"),
        (br#"{"inputs":[{"name":"X","datatype":"FP32","shape":[1,29],"data":[]}]}"#.to_vec(), None, 400, "needs 29"),
        (serde_json::to_vec(&json!({"inputs":[{"name":"X","datatype":"FP32","shape":[1,29],"data":vec![0.0;29]}]})).unwrap(), None, 400, "shape"),
        (serde_json::to_vec(&json!({"inputs":[{"name":"X","datatype":"FP64","shape":[1,30],"data":vec![0.0;30]}]})).unwrap(), None, 400, "must be FP32"),
        (serde_json::to_vec(&json!({"inputs":[{"name":"Y","datatype":"FP32","shape":[1,30],"data":vec![0.0;30]}]})).unwrap(), None, 400, "unknown input"),
        (serde_json::to_vec(&json!({"inputs":[]})).unwrap(), None, 400, "missing input"),
        (br#"{"inputs":[{"name":"X","datatype":"FP32","shape":[1,30],"parameters":{"binary_data_size":120}}]}"#.to_vec(), None, 400, "expecting 120"),
        (b"{}".to_vec(), Some(99), 400, "Inference-Header-Content-Length"),
        (serde_json::to_vec(&json!({"inputs":[{"name":"X","datatype":"FP32","shape":[1,30],"data":vec![0.0;30]}], "outputs":[{"name":"nope"}]})).unwrap(), None, 400, "no output"),
    ];
    for (body, header_len, want_status, want_text) in cases {
        let (status, headers, bytes) = post(&url, body.clone(), header_len).await;
        let err: Json = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            status,
            want_status,
            "{}: {err}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(headers["content-type"], "application/json");
        assert!(
            err["error"].as_str().unwrap().contains(want_text),
            "{}: {err}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, _, _) = post(
        &format!("{}/v2/models/nope/infer", s.url),
        b"{}".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Still serving, concurrently.
    let ok = serde_json::to_vec(
        &json!({"inputs":[{"name":"X","datatype":"FP32","shape":[1,30],"data":vec![1.0;30]}]}),
    )
    .unwrap();
    let mut handles = Vec::new();
    for _ in 0..32 {
        let (url, ok) = (url.clone(), ok.clone());
        handles.push(tokio::spawn(async move { post(&url, ok, None).await.0 }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_records_api() {
    let s = start().await;
    let (inputs, _) = credit_inputs();
    // Two records built from the fixture's first two rows.
    let records: Vec<Json> = (0..2)
        .map(|r| {
            let mut obj = serde_json::Map::new();
            for i in &inputs {
                obj.insert(
                    i["name"].as_str().unwrap().to_string(),
                    i["data"][r].clone(),
                );
            }
            Json::Object(obj)
        })
        .collect();
    let body = serde_json::to_vec(&json!({"instances": records})).unwrap();
    let (status, _, bytes) = post(&format!("{}/v1/models/credit:predict", s.url), body, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let r: Json = serde_json::from_slice(&bytes).unwrap();
    let preds = r["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    assert!(preds[0]["probability"].as_f64().unwrap() >= 0.0);
    assert!(["good", "bad"].contains(&preds[0]["label"].as_str().unwrap()));
    assert_eq!(preds[0].as_object().unwrap().len(), 2, "{}", preds[0]);

    // An imported ONNX graph of the same task answers in the same shape: the positive class's
    // probability (the graph's second probability column, as V2 gives it) and the class name,
    // not the graph's own `label` and two-column `probabilities`.
    let csv = std::fs::read_to_string(slipway_testkit::data("breast_cancer.csv")).unwrap();
    let mut lines = csv.lines();
    let names: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.take(3).map(|l| l.split(',').collect()).collect();
    let records: Vec<Json> = rows
        .iter()
        .map(|row| {
            let obj: serde_json::Map<String, Json> = names[..30]
                .iter()
                .zip(row)
                .map(|(n, v)| (n.to_string(), json!(v.parse::<f64>().unwrap())))
                .collect();
            Json::Object(obj)
        })
        .collect();
    let body = serde_json::to_vec(&json!({"instances": records})).unwrap();
    let (status, _, bytes) = post(&format!("{}/v1/models/cancer:predict", s.url), body, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let v1: Json = serde_json::from_slice(&bytes).unwrap();
    let matrix: Vec<f64> = rows
        .iter()
        .flat_map(|r| r[..30].iter().map(|v| v.parse::<f64>().unwrap()))
        .collect();
    let body = serde_json::to_vec(
        &json!({"inputs": [{"name": "X", "datatype": "FP32", "shape": [3, 30], "data": matrix}]}),
    )
    .unwrap();
    let (status, _, bytes) = post(&format!("{}/v2/models/cancer/infer", s.url), body, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let v2: Json = serde_json::from_slice(&bytes).unwrap();
    let proba = v2["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "probabilities")
        .unwrap();
    let graph_labels = v2["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap();
    for (k, p) in v1["predictions"].as_array().unwrap().iter().enumerate() {
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["label", "probability"], "{p}");
        let want = proba["data"][2 * k + 1].as_f64().unwrap();
        assert!(
            (p["probability"].as_f64().unwrap() - want).abs() < 1e-6,
            "{p} vs {want}"
        );
        let label = if want >= 0.5 { "malignant" } else { "benign" };
        assert_eq!(p["label"], label, "{p}");
        assert_eq!(p["label"], graph_labels["data"][k], "{p}");
    }

    let (status, _, bytes) = post(
        &format!("{}/v1/models/credit:predict", s.url),
        br#"{"instances":[1,2]}"#.to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&bytes).contains("not a record"));
    let (status, _, _) = post(
        &format!("{}/v1/models/credit:explain", s.url),
        b"{}".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_outcome() {
    let s = start().await;
    let url = format!("{}/v2/models/cancer/infer", s.url);
    let ok = serde_json::to_vec(
        &json!({"inputs":[{"name":"X","datatype":"FP32","shape":[4,30],"data":vec![1.0;120]}]}),
    )
    .unwrap();
    for _ in 0..3 {
        assert_eq!(post(&url, ok.clone(), None).await.0, 200);
    }
    assert_eq!(post(&url, b"{".to_vec(), None).await.0, 400);
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_string()
    };
    assert!(line("slipway_requests_total{model=\"cancer\",version=\"1\",protocol=\"rest_v2\",outcome=\"ok\"}").ends_with(" 3"), "{text}");
    assert!(line("slipway_requests_total{model=\"cancer\",version=\"1\",protocol=\"rest_v2\",outcome=\"invalid\"}").ends_with(" 1"), "{text}");
    assert!(
        line("slipway_compute_duration_seconds_count{model=\"cancer\"}").ends_with(" 3"),
        "{text}"
    );
    assert!(
        line("slipway_batch_rows_sum{model=\"cancer\"}").ends_with(" 12.0"),
        "{text}"
    );
    // A multi-threaded runtime: every batch ran on the model's worker.
    assert!(
        line("slipway_batch_executions_total{model=\"cancer\",version=\"1\",thread=\"worker\"}")
            .ends_with(" 3"),
        "{text}"
    );
    assert!(
        line("slipway_batch_executions_total{model=\"cancer\",version=\"1\",thread=\"network\"}")
            .ends_with(" 0"),
        "{text}"
    );
    assert!(line("slipway_in_flight_requests").ends_with(" 0"), "{text}");
    assert!(
        line("slipway_model_loaded{model=\"credit\",version=\"3\",platform=\"slipway_native\"}")
            .ends_with(" 1"),
        "{text}"
    );
    assert!(
        line("process_resident_memory_bytes")
            .split(' ')
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 1 << 20
    );
    assert!(line("slipway_model_loads_total").ends_with(" 2"), "{text}");
    assert!(
        line("slipway_model_load_failures_total").ends_with(" 0"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_repository_extensions() {
    let s = start().await;
    let url = format!("{}/v2/models/cancer/infer", s.url);
    let ok = serde_json::to_vec(
        &json!({"inputs":[{"name":"X","datatype":"FP32","shape":[4,30],"data":vec![1.0;120]}]}),
    )
    .unwrap();
    for _ in 0..2 {
        assert_eq!(post(&url, ok.clone(), None).await.0, 200);
    }
    let bad = serde_json::to_vec(
        &json!({"inputs":[{"name":"X","datatype":"FP32","shape":[1,29],"data":vec![1.0;29]}]}),
    )
    .unwrap();
    assert_eq!(post(&url, bad, None).await.0, 400);
    let (status, stats) = get(&format!("{}/v2/models/cancer/stats", s.url)).await;
    assert_eq!(status, 200);
    let m = &stats["model_stats"][0];
    assert_eq!(m["name"], "cancer");
    assert_eq!(m["inference_count"], 8);
    assert_eq!(m["execution_count"], 2);
    assert_eq!(m["inference_stats"]["success"]["count"], 2);
    assert_eq!(m["inference_stats"]["fail"]["count"], 1);
    assert!(
        m["inference_stats"]["compute_infer"]["ns"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(m["last_inference"].as_u64().unwrap() > 1_700_000_000_000);
    let (status, all) = get(&format!("{}/v2/models/stats", s.url)).await;
    assert_eq!(status, 200);
    assert_eq!(all["model_stats"].as_array().unwrap().len(), 2);

    let (status, _, body) = post(&format!("{}/v2/repository/index", s.url), vec![], None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Json>(&body).unwrap(),
        json!([{"name": "cancer", "version": "1", "state": "READY"}, {"name": "credit", "version": "3", "state": "READY"}])
    );
    let (status, _, _) = post(
        &format!("{}/v2/repository/models/credit/unload", s.url),
        vec![],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get(&format!("{}/v2/models/credit/ready", s.url)).await.0,
        404
    );
    let (status, _, _) = post(
        &format!("{}/v2/repository/models/credit/unload", s.url),
        vec![],
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// A native package trained with `--input matrix` takes one `[rows, 30]` tensor over V2 (FP32
/// is widened exactly to the model's FP64), is described as such in its metadata, answers V1
/// records by feature name with the same numbers, and refuses a matrix of the wrong width.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_matrix_package() {
    use slipway_learn::train::{self, InputLayout, ModelKind, TrainParams, TrainSpec};
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = TrainSpec {
        data: repo().join("data/breast_cancer.csv"),
        test_data: None,
        dataset: slipway_learn::dataset::DatasetSpec {
            target: "diagnosis".into(),
            ..Default::default()
        },
        params: TrainParams {
            model: ModelKind::Logistic,
            ..TrainParams::default()
        },
        name: "cancer_matrix".into(),
        input: InputLayout::Matrix,
    };
    let trained = train::train(&spec, &mut |_| {}).unwrap();
    slipway_learn::package::write(dir.path(), &trained.manifest, &trained.network).unwrap();
    let loaded = slipway_runtime::load(dir.path()).unwrap();
    let model = Arc::clone(&loaded.model);
    s.engine.add("cancer_matrix", "1", loaded);
    let names: Vec<String> = trained
        .manifest
        .features
        .iter()
        .map(|f| f.name.clone())
        .collect();

    let (status, meta) = get(&format!("{}/v2/models/cancer_matrix", s.url)).await;
    assert_eq!(status, 200);
    assert_eq!(
        meta["inputs"],
        json!([{"name": "features", "datatype": "FP64", "shape": [-1, 30]}])
    );

    // Two rows of the file, in the model's feature order.
    let text = std::fs::read_to_string(repo().join("data/breast_cancer.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let rows: Vec<Vec<f32>> = text
        .lines()
        .skip(1)
        .take(2)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            names
                .iter()
                .map(|n| {
                    cells[header.iter().position(|h| h == n).unwrap()]
                        .parse()
                        .unwrap()
                })
                .collect()
        })
        .collect();
    let want = model
        .infer(&[Tensor {
            name: "features".into(),
            shape: vec![2, 30],
            data: TensorData::Fp64(rows.concat().iter().map(|&v| f64::from(v)).collect()),
        }])
        .unwrap();
    let TensorData::Fp64(want_p) = &want[0].data else {
        panic!("probability is FP64")
    };

    let body = json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 30], "data": rows}]});
    let url = format!("{}/v2/models/cancer_matrix/infer", s.url);
    let (status, _, bytes) = post(&url, serde_json::to_vec(&body).unwrap(), None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let r: Json = serde_json::from_slice(&bytes).unwrap();
    let got: Vec<f64> = serde_json::from_value(r["outputs"][0]["data"].clone()).unwrap();
    assert_eq!(got, *want_p);

    let records: Vec<Json> = rows
        .iter()
        .map(|row| {
            Json::Object(
                names
                    .iter()
                    .zip(row)
                    .map(|(n, &v)| (n.clone(), json!(f64::from(v))))
                    .collect(),
            )
        })
        .collect();
    let (status, _, bytes) = post(
        &format!("{}/v1/models/cancer_matrix:predict", s.url),
        serde_json::to_vec(&json!({"instances": records})).unwrap(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let r: Json = serde_json::from_slice(&bytes).unwrap();
    for (k, p) in want_p.iter().enumerate() {
        assert_eq!(r["predictions"][k]["probability"].as_f64().unwrap(), *p);
    }

    let narrow = json!({"inputs": [{"name": "features", "datatype": "FP64", "shape": [1, 29], "data": vec![1.0; 29]}]});
    let (status, _, bytes) = post(&url, serde_json::to_vec(&narrow).unwrap(), None).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&bytes).contains("shape"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}
