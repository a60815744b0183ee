//! The hostile requests of the issue 13 review, sent over the wire to the real server: each is
//! refused with the right status in the documented shape, bounded before it allocates, counted,
//! and the server answers normal requests after it.

use std::sync::Arc;

use serde_json::{Value as Json, json};
use slipway_core::{CoreError, Model, Signature, Tensor};

mod common;
use common::get;

async fn post(url: &str, body: Vec<u8>) -> (u16, reqwest::header::HeaderMap, Json) {
    let r = reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, headers, body)
}

/// One record from the credit fixture's first row (missing numbers given as 1).
fn record() -> serde_json::Map<String, Json> {
    let fixture: Json = serde_json::from_slice(
        &std::fs::read(slipway_testkit::case("native_logistic_credit.json")).unwrap(),
    )
    .unwrap();
    fixture["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let v = &i["data"][0];
            let v = if v.is_null() { json!(1.0) } else { v.clone() };
            (i["name"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn v1(records: &[Json]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "instances": records })).unwrap()
}

async fn predicts(s: &common::Server) -> bool {
    let (status, _, body) = post(
        &format!("{}/v1/models/credit:predict", s.http),
        v1(&[Json::Object(record())]),
    )
    .await;
    status == 200 && body["predictions"][0]["probability"].is_number()
}

fn counter(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_v1_records_is_refused_once_it_passes_the_capacity() {
    let s = common::start().await;
    let url = format!("{}/v1/models/credit:predict", s.http);
    let flood = format!("{{\"instances\":[{}]}}", vec!["{}"; 100_000].join(","));
    let (status, headers, body) = post(&url, flood.into_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "too_large");
    assert!(body["error"].as_str().unwrap().contains("split"), "{body}");
    assert!(headers.contains_key("x-request-id"));
    // Nothing is left in hand, and normal requests are answered.
    let credit = s.engine.get("credit", None).unwrap();
    assert_eq!(credit.scheduler.in_hand(), 0);
    assert!(predicts(&s).await);
    // Three such requests at once: each refused (413 once it passes the capacity, or 503 when
    // the others' rows leave it no room first), none admitted beside the others.
    let many = format!("{{\"instances\":[{}]}}", vec!["{}"; 50_000].join(","));
    let all: Vec<_> = (0..3)
        .map(|_| {
            let (url, body) = (url.clone(), many.clone().into_bytes());
            tokio::spawn(async move { post(&url, body).await.0 })
        })
        .collect();
    for h in all {
        let status = h.await.unwrap();
        assert!(status == 413 || status == 503, "{status}");
    }
    // V1 failures count in the statistics and the metrics, as V2's do.
    let (_, stats) = get(&format!("{}/v2/models/credit/stats", s.http)).await;
    assert_eq!(
        stats["model_stats"][0]["inference_stats"]["fail"]["count"],
        4
    );
    let text = reqwest::get(format!("{}/metrics", s.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: f64 = ["too_large", "overloaded"]
        .iter()
        .map(|o| {
            counter(
                &text,
                &format!("slipway_requests_total{{model=\"credit\",version=\"3\",protocol=\"rest_v1\",outcome=\"{o}\"}}"),
            )
        })
        .sum();
    assert_eq!(refused, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_refuses_wrong_types_and_unknown_columns_by_name() {
    let s = common::start().await;
    let url = format!("{}/v1/models/credit:predict", s.http);
    for (value, shown) in [
        (json!("old"), "the string \"old\""),
        (json!([1, 2]), "an array"),
        (json!({}), "an object"),
        (json!(true), "true"),
    ] {
        let mut bad = record();
        bad.insert("age_in_years".into(), value);
        let body = v1(&[Json::Object(record()), Json::Object(bad)]);
        let (status, _, err) = post(&url, body).await;
        assert_eq!(status, 400, "{err}");
        let text = err["error"].as_str().unwrap();
        assert!(
            text.contains("record 1") && text.contains("age_in_years") && text.contains(shown),
            "{text}"
        );
    }
    let mut misspelt = record();
    misspelt.insert("agee_in_years".into(), json!(41));
    let (status, _, err) = post(&url, v1(&[Json::Object(misspelt)])).await;
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap().contains("agee_in_years"),
        "{err}"
    );
    // The same column twice in one record.
    let twice = br#"{"instances":[{"age_in_years":41,"age_in_years":42}]}"#.to_vec();
    let (status, _, err) = post(&url, twice).await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("twice"), "{err}");
    // Missing values follow the native package's rule: imputed, answered.
    let mut sparse = record();
    sparse.insert("age_in_years".into(), Json::Null);
    sparse.remove("housing");
    let (status, _, body) = post(&url, v1(&[Json::Object(sparse)])).await;
    assert_eq!(status, 200, "{body}");
    // An ONNX graph's float inputs take NaN for a missing value too.
    let cancer = format!("{}/v1/models/cancer:predict", s.http);
    let (status, _, body) = post(
        &cancer,
        br#"{"instances":[{"mean_radius": 14.2}]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(predicts(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_rows_past_the_capacity_are_refused_before_their_data_is_read() {
    let s = common::start().await;
    let url = format!("{}/v2/models/cancer/infer", s.http);
    let rows = 5_000;
    let body = json!({"inputs": [{"name": "X", "datatype": "FP32", "shape": [rows, 30], "data": vec![1.0; rows * 30]}]});
    let (status, _, err) = post(&url, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (413, Some("too_large")),
        "{err}"
    );
    // A shape of 2^28 - 1 rows with one value: refused at the shape, not at the data.
    let lie = br#"{"inputs":[{"name":"X","datatype":"FP32","shape":[268435455,1],"data":[1]}]}"#;
    let (status, _, err) = post(&url, lie.to_vec()).await;
    assert_eq!(status, 413, "{err}");
    let ok = json!({"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 30], "data": vec![1.0; 60]}]});
    assert_eq!(post(&url, serde_json::to_vec(&ok).unwrap()).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_layers_own_refusals_come_in_the_documented_shape() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = common::start().await;
    // A declared body over the limit: answered from the header, with nothing sent after it.
    let addr = s.http.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /v2/models/cancer/infer HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            100 << 20
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"code\":\"too_large\""), "{text}");
    // An unknown Content-Encoding: tower-http's 415, in our shape.
    let r = reqwest::Client::new()
        .post(format!("{}/v2/models/cancer/infer", s.http))
        .header("content-encoding", "br")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let body: Json = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "unsupported_media_type", "{body}");
    // A path that is not UTF-8: axum's 400, in our shape.
    let (status, body) = get(&format!("{}/v2/models/%FF/ready", s.http)).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_request", "{body}");
    // A 20,000-character model name is echoed at most in part.
    let (status, body) = get(&format!("{}/v2/models/{}", s.http, "m".repeat(20_000))).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().len() <= slipway_server::MAX_MESSAGE);
    assert!(predicts(&s).await);
}

/// A model that fails on every request with an error naming its internals.
struct Failing(Arc<dyn Model>);

impl Model for Failing {
    fn signature(&self) -> &Signature {
        self.0.signature()
    }
    fn infer(&self, _: &[Tensor]) -> Result<Vec<Tensor>, CoreError> {
        Err(CoreError::InvalidInput(
            "node Gather_7 read /srv/models/secret.onnx out of range".into(),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_failure_is_a_500_whose_detail_stays_in_the_log() {
    let s = common::start().await;
    let credit = s.engine.get("credit", None).unwrap();
    s.engine.add(
        "credit",
        "4",
        slipway_runtime::Loaded {
            manifest: credit.manifest.clone(),
            model: Arc::new(Failing(Arc::clone(&credit.model))),
            onnx: None,
        },
    );
    let (status, headers, body) = post(
        &format!("{}/v1/models/credit:predict", s.http),
        v1(&[Json::Object(record())]),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(body["code"], "internal");
    let text = body["error"].as_str().unwrap();
    assert!(!text.contains("Gather") && !text.contains("/srv"), "{text}");
    assert!(text.contains("x-request-id"), "{text}");
    assert!(headers.contains_key("x-request-id"));
}

/// A burst of connections larger than the kernel's default listen queue (128) waits to be
/// accepted instead of being dropped: with the default queue, connection 130 onwards got no
/// answer to its SYN while the server was busy (and, under load, clients saw resets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_waits_in_the_listen_queue() {
    let listener = slipway_server::listen("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Nothing accepts while the burst connects: the listen queue alone must hold it.
    let connected = tokio::task::spawn_blocking(move || {
        (0..400)
            .map(|_| {
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500))
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let refused = connected.iter().filter(|c| c.is_err()).count();
    assert_eq!(refused, 0, "{refused} of 400 connections were not taken");
    let mut accepted = 0;
    while accepted < 400 {
        tokio::time::timeout(std::time::Duration::from_secs(5), listener.accept())
            .await
            .expect("every queued connection is accepted")
            .unwrap();
        accepted += 1;
    }
    drop(connected);
}
