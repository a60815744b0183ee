//! A small load generator for `bench/serve.sh`: REST (HTTP/1.1 keep-alive, one connection per
//! client) or gRPC (`ModelInfer`, tonic, one HTTP/2 connection per 16 clients), closed loop (N
//! clients, each sending its next request when the last is answered) or open loop (requests
//! scheduled at a fixed rate; latency counted from the scheduled time, so a slow server cannot
//! hide its queue). Prints one JSON line.
//!
//! ```sh
//! cargo run --release -p slipway-server --example loadgen -- \
//!   --url http://127.0.0.1:8080/v2/models/m/infer --body body.json --concurrency 32 --seconds 10
//! cargo run --release -p slipway-server --example loadgen -- \
//!   --grpc 127.0.0.1:8081 --model m --body body.json --concurrency 32 --seconds 10
//! cargo run --release -p slipway-server --example loadgen -- \
//!   --url … --body … --rate 40000 --concurrency 256 --seconds 30
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use slipway_server::grpc::pb;
use slipway_server::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;

#[derive(Clone)]
struct Args {
    url: Option<String>,
    grpc: Option<String>,
    model: String,
    body: Bytes,
    header_len: Option<String>,
    concurrency: usize,
    seconds: f64,
    rate: Option<f64>,
}

fn args() -> Args {
    let mut a = Args {
        url: None,
        grpc: None,
        model: String::new(),
        body: Bytes::new(),
        header_len: None,
        concurrency: 1,
        seconds: 10.0,
        rate: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = Some(value()),
            "--grpc" => a.grpc = Some(value()),
            "--model" => a.model = value(),
            "--body" => {
                let path = value();
                a.body = Bytes::from(
                    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}")),
                );
            }
            "--header-len" => a.header_len = Some(value()),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds S"),
            "--rate" => a.rate = Some(value().parse().expect("--rate R")),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        a.url.is_some() != a.grpc.is_some(),
        "give exactly one of --url and --grpc"
    );
    a
}

/// What every client records: latencies in µs and outcomes.
#[derive(Default)]
struct Tally {
    latencies: Vec<u32>,
    ok: u64,
    shed: u64,
    other: u64,
    /// Why the failed requests failed (a status or a client error), for stderr.
    why: std::collections::BTreeMap<String, u64>,
}

/// When the next request is due: closed loop, now; open loop, the next slot of the schedule
/// (`None` once the run is over).
struct Clock {
    start: Instant,
    end: Instant,
    rate: Option<f64>,
    next: AtomicU64,
    stop: AtomicBool,
}

impl Clock {
    async fn due(&self) -> Option<Instant> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        match self.rate {
            None => {
                let now = Instant::now();
                (now < self.end).then_some(now)
            }
            Some(rate) => {
                let k = self.next.fetch_add(1, Ordering::Relaxed);
                let at = self.start + Duration::from_secs_f64(k as f64 / rate);
                // A slot the clients reach only after the run is over (every connection was
                // busy until then) is not sent: the run lasts its seconds, not its backlog.
                if at >= self.end || Instant::now() >= self.end {
                    return None;
                }
                tokio::time::sleep_until(at.into()).await;
                Some(at)
            }
        }
    }
}

async fn rest_client(args: Arc<Args>, clock: Arc<Clock>) -> Tally {
    let url: hyper::Uri = args
        .url
        .as_deref()
        .unwrap_or_default()
        .parse()
        .expect("URL");
    let authority = url.authority().expect("host:port").clone();
    let connect = || async {
        let stream = tokio::net::TcpStream::connect(authority.as_str())
            .await
            .ok()?;
        stream.set_nodelay(true).ok();
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        Some(send)
    };
    let mut send = connect().await.expect("connecting");
    let mut tally = Tally::default();
    while let Some(scheduled) = clock.due().await {
        let mut req = hyper::Request::post(url.clone())
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(n) = &args.header_len {
            req = req.header("inference-header-content-length", n.as_str());
        }
        let req = req.body(Full::new(args.body.clone())).expect("request");
        let (status, close) = match send.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let close = resp
                    .headers()
                    .get(hyper::header::CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                let _ = resp.into_body().collect().await;
                if status != 200 && status != 503 {
                    *tally.why.entry(format!("HTTP {status}")).or_default() += 1;
                }
                (status, close)
            }
            Err(e) => {
                *tally.why.entry(format!("{e:?}")).or_default() += 1;
                (0, true)
            }
        };
        record(&mut tally, scheduled, status == 200, status == 503);
        // A server that refuses without reading the body closes the connection: open another,
        // as a browser or a client library would.
        if close || send.ready().await.is_err() {
            match connect().await {
                Some(s) => send = s,
                None => break,
            }
        }
    }
    tally
}

async fn grpc_client(
    mut client: GrpcInferenceServiceClient<tonic::transport::Channel>,
    request: pb::ModelInferRequest,
    clock: Arc<Clock>,
) -> Tally {
    let mut tally = Tally::default();
    while let Some(scheduled) = clock.due().await {
        let result = client.model_infer(request.clone()).await;
        let shed = matches!(&result, Err(s) if s.code() == tonic::Code::Unavailable);
        record(&mut tally, scheduled, result.is_ok(), shed);
    }
    tally
}

fn record(tally: &mut Tally, scheduled: Instant, ok: bool, shed: bool) {
    let us = u32::try_from(scheduled.elapsed().as_micros()).unwrap_or(u32::MAX);
    if ok {
        tally.ok += 1;
        tally.latencies.push(us);
    } else if shed {
        tally.shed += 1;
    } else {
        tally.other += 1;
    }
}

fn main() {
    let args = Arc::new(args());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let start = Instant::now() + Duration::from_millis(200);
        let clock = Arc::new(Clock {
            start,
            end: start + Duration::from_secs_f64(args.seconds),
            rate: args.rate,
            next: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let mut tasks = Vec::new();
        if let Some(addr) = &args.grpc {
            // The same V2 REST body (JSON or binary), sent as a ModelInferRequest with raw contents.
            let header_len = args.header_len.as_deref().map(|n| n.trim().parse().expect("header length"));
            let parsed = slipway_server::oip::parse_request(&args.body, header_len, |_| Ok::<(), slipway_server::oip::BadRequest>(())).expect("a V2 request body");
            let request = pb::ModelInferRequest {
                model_name: args.model.clone(),
                inputs: parsed
                    .inputs
                    .iter()
                    .zip(&parsed.wire)
                    .map(|(t, dt)| pb::model_infer_request::InferInputTensor {
                        name: t.name.clone(),
                        datatype: dt.as_str().into(),
                        shape: t.shape.iter().map(|&d| d as i64).collect(),
                        ..Default::default()
                    })
                    .collect(),
                raw_input_contents: parsed
                    .inputs
                    .iter()
                    .map(|t| slipway_server::oip::binary_block(&t.data))
                    .collect(),
                ..Default::default()
            };
            let mut channels = Vec::new();
            for _ in 0..args.concurrency.div_ceil(16) {
                let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                    .expect("address")
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .expect("connecting");
                channels.push(channel);
            }
            for i in 0..args.concurrency {
                let client = GrpcInferenceServiceClient::new(channels[i / 16].clone())
                    .max_decoding_message_size(usize::MAX);
                tasks.push(tokio::spawn(grpc_client(
                    client,
                    request.clone(),
                    Arc::clone(&clock),
                )));
            }
        } else {
            for _ in 0..args.concurrency {
                tasks.push(tokio::spawn(rest_client(Arc::clone(&args), Arc::clone(&clock))));
            }
        }
        tokio::time::sleep_until(start.into()).await;
        let mut all = Tally::default();
        for t in tasks {
            let t = t.await.expect("client task");
            all.latencies.extend(t.latencies);
            all.ok += t.ok;
            all.shed += t.shed;
            all.other += t.other;
            for (why, n) in t.why {
                *all.why.entry(why).or_default() += n;
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        for (why, n) in &all.why {
            eprintln!("failed {n}x: {why}");
        }
        all.latencies.sort_unstable();
        let pct = |p: f64| -> u32 {
            if all.latencies.is_empty() {
                return 0;
            }
            let i = ((all.latencies.len() as f64 * p).ceil() as usize).clamp(1, all.latencies.len());
            all.latencies[i - 1]
        };
        println!(
            "{{\"seconds\": {elapsed:.3}, \"ok\": {}, \"shed\": {}, \"failed\": {}, \"ok_per_s\": {:.1}, \"offered_per_s\": {:.1}, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}, \"max_us\": {}}}",
            all.ok,
            all.shed,
            all.other,
            all.ok as f64 / elapsed,
            (all.ok + all.shed + all.other) as f64 / elapsed,
            pct(0.50),
            pct(0.99),
            pct(0.999),
            all.latencies.last().copied().unwrap_or(0),
        );
    });
}
