//! Graceful shutdown over the wire: requests in flight when the signal comes finish and are
//! answered; past the drain deadline the server stops waiting for them.

use std::sync::Arc;
use std::time::Duration;

use slipway_engine::Engine;

mod common;
use common::Slow;

/// Serves the slow credit model, sends one V1 request, signals shutdown while it runs, and
/// returns the request's status (if it was answered) and whether the server drained.
async fn shut_down_during_a_request(delay: Duration, drain: Duration) -> (Option<u16>, bool) {
    let mut loaded = slipway_testkit::load_credit();
    loaded.model = Arc::new(Slow {
        inner: loaded.model,
        delay,
    });
    let engine = Arc::new(Engine::new(1));
    engine.add("credit", "1", loaded);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/models/credit:predict",
        listener.local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(slipway_server::serve(
        slipway_server::ServerConfig {
            http: listener,
            grpc: None,
            drain,
            v1_unknown_columns: slipway_server::UnknownColumns::default(),
            auth: Default::default(),
        },
        engine,
        async move {
            let _ = stopped.await;
        },
    ));
    let request = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .body(r#"{"instances": [{"age_in_years": 41, "housing": "own"}]}"#)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    });
    // Let the request reach the model, then signal.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let drained = server.await.unwrap().unwrap() == slipway_server::Stopped::Drained;
    if !drained {
        // The abandoned request's connection goes with the server; do not wait for the model.
        request.abort();
        return (None, drained);
    }
    (request.await.unwrap(), drained)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_before_the_server_stops() {
    let (status, drained) =
        shut_down_during_a_request(Duration::from_millis(400), Duration::from_secs(30)).await;
    assert!(drained);
    assert_eq!(status, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_bounds_the_wait() {
    let (_, drained) =
        shut_down_during_a_request(Duration::from_secs(3), Duration::from_millis(200)).await;
    assert!(
        !drained,
        "the server waited past its deadline for a 3 s request"
    );
}

/// An engine serving the credit model `delay` slower per request, one row in hand at a time
/// (one worker, no batching, `queue_capacity` 1): a second request is refused while one runs.
fn one_at_a_time(delay: Duration) -> Arc<Engine> {
    let mut loaded = slipway_testkit::load_credit();
    loaded.model = Arc::new(Slow {
        inner: loaded.model,
        delay,
    });
    let mut config = slipway_engine::ModelConfig::default();
    config
        .apply("instances=1,batching=off,queue_capacity=1")
        .unwrap();
    let engine = Arc::new(Engine::with_defaults(config));
    engine.add("credit", "1", loaded);
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_and_grpc_unavailable() {
    use slipway_server::grpc::pb;
    let signature = slipway_testkit::load_credit().model.signature().clone();
    let engine = one_at_a_time(Duration::from_millis(300));
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/models/credit:predict",
        http.local_addr().unwrap()
    );
    let grpc_url = format!("http://{}", grpc.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(slipway_server::serve(
        slipway_server::ServerConfig {
            http,
            grpc: Some(grpc),
            drain: Duration::from_secs(10),
            v1_unknown_columns: slipway_server::UnknownColumns::default(),
            auth: Default::default(),
        },
        engine,
        async move {
            let _ = stopped.await;
        },
    ));
    // Six at once: one runs, one waits, the rest are refused at once.
    let rest: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .post(url)
                    .body(r#"{"instances": [{"age_in_years": 41}]}"#)
                    .send()
                    .await
                    .unwrap();
                let retry = r.headers().get("retry-after").cloned();
                (r.status().as_u16(), retry, r.text().await.unwrap())
            })
        })
        .collect();
    let mut shed = 0;
    for t in rest {
        let (status, retry, body) = t.await.unwrap();
        match status {
            200 => {}
            503 => {
                shed += 1;
                assert_eq!(retry.unwrap(), "1");
                assert!(body.contains("retry shortly"), "{body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(shed >= 1, "nothing was shed");

    // gRPC: the same refusal is UNAVAILABLE.
    let channel = tonic::transport::Channel::from_shared(grpc_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = pb::ModelInferRequest {
        model_name: "credit".into(),
        inputs: signature
            .inputs
            .iter()
            .map(|i| pb::model_infer_request::InferInputTensor {
                name: i.name.clone(),
                datatype: i.datatype.as_str().into(),
                shape: vec![1],
                ..Default::default()
            })
            .collect(),
        raw_input_contents: signature
            .inputs
            .iter()
            .map(|i| {
                if i.datatype == slipway_core::DataType::Fp64 {
                    1.0f64.to_le_bytes().to_vec()
                } else {
                    vec![1, 0, 0, 0, b'x']
                }
            })
            .collect(),
        ..Default::default()
    };
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut client =
                pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel.clone());
            let request = request.clone();
            tokio::spawn(async move { client.model_infer(request).await })
        })
        .collect();
    let mut unavailable = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::Unavailable => unavailable += 1,
            Err(s) => panic!("{s}"),
        }
    }
    assert!(unavailable >= 1, "nothing was shed over gRPC");
    stop.send(()).unwrap();
    assert_eq!(
        server.await.unwrap().unwrap(),
        slipway_server::Stopped::Drained
    );
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body) from `tcp`: its status.
async fn read_response(tcp: &mut tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    head[9..12].parse().unwrap()
}

/// A request a full model refuses has its body read and dropped, so its connection stays open
/// for the next request (refusing without reading it made hyper close the connection, and
/// clients saw resets instead of 503s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_keeps_its_connection() {
    use tokio::io::AsyncWriteExt;
    let engine = one_at_a_time(Duration::from_millis(1500));
    let http = slipway_server::listen("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(slipway_server::serve(
        slipway_server::ServerConfig {
            http,
            grpc: None,
            drain: Duration::from_secs(10),
            v1_unknown_columns: slipway_server::UnknownColumns::default(),
            auth: Default::default(),
        },
        engine,
        async move {
            let _ = stopped.await;
        },
    ));
    let body = r#"{"instances": [{"age_in_years": 41}]}"#;
    let url = format!("http://{addr}/v1/models/credit:predict");
    let busy = tokio::spawn(reqwest::Client::new().post(url).body(body).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A body larger than one read, so that refusing it means reading it.
    let big = format!(
        r#"{{"instances": [{{"age_in_years": 41}}], "pad": "{}"}}"#,
        "x".repeat(200_000)
    );
    let request = |body: &str| {
        format!(
            "POST /v1/models/credit:predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    tcp.write_all(request(&big).as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut tcp).await, 503);
    tcp.write_all(format!("GET /v2/health/live HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut tcp).await, 200);
    assert_eq!(busy.await.unwrap().unwrap().status(), 200);
    stop.send(()).unwrap();
}
