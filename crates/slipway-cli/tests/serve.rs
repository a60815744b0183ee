//! `slipway serve` as a process: it prints where it listens, answers over HTTP, refuses to
//! start with nothing to serve, and stops cleanly on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{
    credit_package, fails, http, http_address, s, spawn_server, start_serve, start_serve_line, stop,
};

#[test]
fn serves_a_package_and_stops_on_sigterm() {
    let pkg = credit_package();
    let (mut child, addr) = start_serve(
        &[s(&pkg), "--http", "127.0.0.1:0", "--workers", "1"],
        Stdio::piped(),
    );

    let live = http(
        &addr,
        "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    assert!(live.ends_with(r#"{"live":true}"#), "{live}");
    let meta = http(
        &addr,
        "GET /v2/models/german_credit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(meta.contains(r#""platform":"slipway_native""#), "{meta}");
    // No Content-Type at all, as tritonclient's gevent client sends it.
    let body = r#"{"instances":[{"age_in_years":41,"duration_in_month":12,"credit_amount":2500}]}"#;
    let req = format!(
        "POST /v1/models/german_credit:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = http(&addr, &req);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"predictions\""),
        "{answer}"
    );

    stop(&mut child);
    // Request logs: JSON lines on stderr (not a terminal here), with the request id.
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("/v2/health/live"))
        .unwrap_or_else(|| panic!("no request log in {logs}"));
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["status"], 200);
    assert!(
        entry["request_id"]
            .as_str()
            .unwrap()
            .starts_with("slipway-"),
        "{entry}"
    );
}

#[test]
fn nothing_to_serve_is_a_usage_error() {
    let (code, err) = fails(&["serve"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--model"), "{err}");
    let (code, err) = fails(&[
        "serve",
        "--model",
        "credit@production",
        "--registry",
        "/nonexistent/registry",
    ]);
    assert_ne!(code, 0, "{err}");
}

fn train(out: &Path, l2: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "train",
            "--data",
            s(&common::data("german_credit.csv")),
            "--target",
            "creditability",
            "--positive-class",
            "bad",
            "--model",
            "logistic",
            "--l2",
            l2,
            "--out",
            s(out),
            "--json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn body_of(response: &str) -> serde_json::Value {
    let (_, body) = response.split_once("\r\n\r\n").unwrap_or(("", ""));
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// Promoting a new version while a client streams requests: every request succeeds, and each
/// answer comes whole from the old version or whole from the new one.
#[test]
fn an_alias_move_swaps_the_model_without_failing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    for (i, l2) in [(1, "0.0001"), (2, "10")] {
        let pkg = dir.path().join(format!("p{i}"));
        train(&pkg, l2);
        common::ok_json(&[
            "register",
            s(&pkg),
            "--name",
            "credit",
            "--registry",
            s(&reg),
            "--json",
        ]);
    }
    common::ok_json(&[
        "promote",
        "credit:1",
        "--to",
        "production",
        "--registry",
        s(&reg),
        "--json",
    ]);
    let (code, err) = fails(&["serve", "--registry", s(&reg), "--alias", "canary"]);
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("canary"), "{err}");
    let (mut child, addr) = start_serve(
        &[
            "--registry",
            s(&reg),
            "--alias",
            "production",
            "--http",
            "127.0.0.1:0",
            "--watch-ms",
            "100",
            "--workers",
            "1",
        ],
        Stdio::null(),
    );

    // One V2 request from the model's metadata: 1.0 for numbers, an unseen category for text.
    let meta = body_of(&http(
        &addr,
        "GET /v2/models/credit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ));
    let inputs: Vec<serde_json::Value> = meta["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let data = if i["datatype"] == "FP64" { serde_json::json!([1.0]) } else { serde_json::json!(["x"]) };
            serde_json::json!({"name": i["name"], "datatype": i["datatype"], "shape": [1], "data": data})
        })
        .collect();
    let body = serde_json::json!({"inputs": inputs}).to_string();
    let request = format!(
        "POST /v2/models/credit/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );

    let mut answers: Vec<(String, String, f64)> = Vec::new();
    let mut promoted = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        let response = http(&addr, &request);
        let status = response.split_whitespace().nth(1).unwrap_or("").to_string();
        let r = body_of(&response);
        answers.push((
            status,
            r["model_version"].as_str().unwrap_or("").to_string(),
            r["outputs"][0]["data"][0].as_f64().unwrap_or(f64::NAN),
        ));
        if answers.len() == 30 && !promoted {
            common::ok_json(&[
                "promote",
                "credit:2",
                "--to",
                "production",
                "--registry",
                s(&reg),
                "--json",
            ]);
            promoted = true;
        }
        if answers.iter().filter(|a| a.1 == "2").count() >= 30 {
            break;
        }
    }
    // The repository extension: unload, then load again from the registry (the alias's version).
    let post = |path: &str| {
        http(
            &addr,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            ),
        )
    };
    let get = |path: &str| {
        http(
            &addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
    };
    assert!(post("/v2/repository/models/credit/unload").starts_with("HTTP/1.1 200"));
    assert!(get("/v2/models/credit/ready").starts_with("HTTP/1.1 404"));
    // Unloaded means unloaded: the alias watcher (every 100 ms here) does not bring it back.
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(get("/v2/models/credit/ready").starts_with("HTTP/1.1 404"));
    let index = body_of(&post("/v2/repository/index"));
    assert_eq!(index[0]["state"], "UNLOADED", "{index}");
    // A version is not a name: no serving a version around the gates.
    let pinned = post("/v2/repository/models/credit:1/load");
    assert!(pinned.starts_with("HTTP/1.1 400"), "{pinned}");
    assert!(post("/v2/repository/models/credit/load").starts_with("HTTP/1.1 200"));
    let meta = body_of(&get("/v2/models/credit"));
    assert_eq!(meta["versions"], serde_json::json!(["2"]));
    let missing = post("/v2/repository/models/nope/load");
    assert!(
        missing.starts_with("HTTP/1.1 404") && missing.contains("nope"),
        "{missing}"
    );
    stop(&mut child);

    assert!(
        answers.iter().all(|a| a.0 == "200"),
        "a request failed: {answers:?}"
    );
    let first_new = answers
        .iter()
        .position(|a| a.1 == "2")
        .expect("the new version was never served");
    assert!(answers[..first_new].iter().all(|a| a.1 == "1"));
    assert!(
        answers[first_new..].iter().all(|a| a.1 == "2"),
        "traffic went back to the old version"
    );
    let p1 = answers[0].2;
    let p2 = answers[first_new].2;
    assert!(
        (p1 - p2).abs() > 1e-6,
        "the two versions should answer differently ({p1} vs {p2})"
    );
    for a in &answers {
        assert_eq!(
            a.2,
            if a.1 == "1" { p1 } else { p2 },
            "an answer mixed versions: {a:?}"
        );
    }
}

#[test]
fn a_toml_config_file_serves_too() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = credit_package();
    let config = dir.path().join("slipway.toml");
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:0\"\nworkers = 1\nqueue_capacity = 512\npackages = [{:?}]\n\n[model_config.german_credit]\nmax_batch_size = 8\npreferred_batch_sizes = [2, 4]\n",
            pkg.display().to_string()
        ),
    )
    .unwrap();
    let (mut child, addr) = start_serve(&["--config", s(&config)], Stdio::null());
    let list = http(
        &addr,
        "GET /v2/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(list.contains(r#"{"models":["german_credit"]}"#), "{list}");
    stop(&mut child);

    std::fs::write(&config, "htp = \"127.0.0.1:0\"\n").unwrap();
    let (code, err) = fails(&["serve", "--config", s(&config)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("htp"), "{err}");
    // A value read as its flag reads it is refused as the flag would be, naming the key.
    std::fs::write(&config, "nan = \"sometimes\"\n").unwrap();
    let (code, err) = fails(&["serve", "--config", s(&config)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nan") && err.contains("sometimes"), "{err}");
    // A flag wins over the file: the file's address is taken, the flag's is free.
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:1\"\npackages = [{:?}]\n",
            pkg.display().to_string()
        ),
    )
    .unwrap();
    let (mut child, addr) = start_serve(
        &["--config", s(&config), "--http", "127.0.0.1:0"],
        Stdio::null(),
    );
    assert_ne!(addr, "127.0.0.1:1");
    stop(&mut child);
    // A model's settings that make no sense are refused, naming the setting.
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:0\"\npackages = [{:?}]\n\n[model_config.german_credit]\nmax_batch = 8\n",
            pkg.display().to_string()
        ),
    )
    .unwrap();
    let (code, err) = fails(&["serve", "--config", s(&config)]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown setting `max_batch`"), "{err}");
    let (_, err) = fails(&[
        "serve",
        s(&pkg),
        "--http",
        "127.0.0.1:0",
        "--model-config",
        "german_credit:instances=two",
    ]);
    assert!(err.contains("instances must be a whole number"), "{err}");
    // Settings for a model that is not served (a misspelt name) are refused, naming the served.
    let (code, err) = fails(&[
        "serve",
        s(&pkg),
        "--http",
        "127.0.0.1:0",
        "--model-config",
        "german_credti:instances=2",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no model named `german_credti` is served here")
            && err.contains("german_credit"),
        "{err}"
    );
}

#[test]
fn serves_grpc_beside_rest_and_can_refuse_nan() {
    use slipway_server::grpc::pb;
    let pkg = credit_package();
    let (mut child, first) = start_serve_line(
        &[
            s(&pkg),
            "--http",
            "127.0.0.1:0",
            "--grpc",
            "127.0.0.1:0",
            "--nan",
            "reject",
        ],
        Stdio::null(),
    );
    let addr_after = |scheme: &str| {
        first
            .split(scheme)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {scheme} address in {first:?}"))
            .to_string()
    };
    let (rest, grpc) = (addr_after("http://"), addr_after("grpc://"));

    // V1 with a column left out: a missing value, refused under --nan reject.
    let body = r#"{"instances": [{"age_in_years": 41}]}"#;
    let reply = http(
        &rest,
        &format!(
            "POST /v1/models/german_credit:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("refuses missing values"), "{reply}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client =
            pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
        assert!(
            client
                .server_live(pb::ServerLiveRequest {})
                .await
                .unwrap()
                .into_inner()
                .live
        );
        let meta = client
            .model_metadata(pb::ModelMetadataRequest {
                name: "german_credit".into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        // Every input, one row; the first FP64 input NaN.
        let mut request = pb::ModelInferRequest {
            model_name: "german_credit".into(),
            ..Default::default()
        };
        let mut nan_given = false;
        for input in &meta.inputs {
            let raw = if input.datatype == "FP64" {
                let v = if nan_given { 1.0f64 } else { f64::NAN };
                nan_given = true;
                v.to_le_bytes().to_vec()
            } else {
                let mut b = 1u32.to_le_bytes().to_vec();
                b.push(b'x');
                b
            };
            request
                .inputs
                .push(pb::model_infer_request::InferInputTensor {
                    name: input.name.clone(),
                    datatype: input.datatype.clone(),
                    shape: vec![1],
                    ..Default::default()
                });
            request.raw_input_contents.push(raw);
        }
        let err = client.model_infer(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("is NaN"), "{}", err.message());
        // The same row without the NaN is answered.
        for (input, raw) in request
            .inputs
            .iter()
            .zip(request.raw_input_contents.iter_mut())
        {
            if input.datatype == "FP64" {
                *raw = 2.0f64.to_le_bytes().to_vec();
            }
        }
        let answer = client.model_infer(request).await.unwrap().into_inner();
        assert_eq!(answer.outputs[0].name, "probability");
    });
    stop(&mut child);
}

/// On one core (`taskset`, as containers limited to one CPU see it) the server runs its network
/// side on a single-threaded runtime: REST, gRPC's port, the V1 API and a clean SIGTERM stop all
/// work there too.
#[test]
fn serves_on_one_core() {
    let pkg = credit_package();
    // taskset (util-linux) runs the server on one core.
    let mut command = Command::new("taskset");
    command
        .args(["-c", "0", env!("CARGO_BIN_EXE_slipway"), "serve", s(&pkg)])
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        // Generous, so that a debug build's model counts as quick.
        .args(["--inline-budget-us", "1000000"]);
    let (mut child, first) = spawn_server(command, Stdio::null());
    let addr = http_address(&first);
    assert!(first.contains("grpc://"), "{first}");
    let body = r#"{"instances":[{"age_in_years":41,"duration_in_month":12,"credit_amount":2500}]}"#;
    for _ in 0..3 {
        let answer = http(
            &addr,
            &format!(
                "POST /v1/models/german_credit:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.contains("\"predictions\""),
            "{answer}"
        );
    }
    // The first request measured the model on its worker; the quick model's later batches ran
    // on the network thread.
    let metrics = http(
        &addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let count = |thread: &str| {
        let prefix = format!(
            "slipway_batch_executions_total{{model=\"german_credit\",version=\"1\",thread=\"{thread}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
    };
    assert_eq!((count("worker"), count("network")), (1, 2), "{metrics}");
    stop(&mut child);
}

/// A request still waiting at the `--drain-ms` deadline is cut off, and the exit status says
/// so (75), rather than 0.
#[test]
fn requests_cut_off_at_the_drain_deadline_make_a_non_zero_exit() {
    let pkg = credit_package();
    // The first request of a batch waits up to 5 s for company: it is still queued at SIGTERM.
    let (mut child, addr) = start_serve(
        &[
            s(&pkg),
            "--http",
            "127.0.0.1:0",
            "--drain-ms",
            "200",
            "--model-config",
            "german_credit:max_queue_delay_us=5000000",
        ],
        Stdio::null(),
    );
    let body = r#"{"instances":[{"age_in_years":41}]}"#;
    let req = format!(
        "POST /v1/models/german_credit:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let waiting = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out);
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(75), "{status:?}");
    let _ = waiting.join();
}

#[test]
fn a_busy_port_is_named_with_its_reason_before_any_model_loads() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let pkg = credit_package();
    let (code, err) = fails(&["serve", s(&pkg), "--http", &addr]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}"))
            && err.contains("another program listens there; choose another port with --http"),
        "{err}"
    );
    assert!(!err.contains("loaded"), "models were loaded first: {err}");
}
