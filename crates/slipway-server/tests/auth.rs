//! The authorization matrix: every REST route and gRPC call × every kind of key → the exact
//! status, on the real server with keys on, spoken to with reqwest and a tonic client.

use std::sync::Arc;

use slipway_registry::keys::new_token;
use slipway_registry::{KeyRecord, Role};
use slipway_server::auth::Auth;
use slipway_server::grpc::pb;
use slipway_server::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::Code;
use tonic::transport::Channel;

mod common;

/// Who calls: no header, or a header with one of these keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    None,
    Malformed,
    Unknown,
    Expired,
    Revoked,
    InferCredit,
    InferOther,
    Monitor,
    Deploy,
    Admin,
}

const CALLERS: [Caller; 10] = [
    Caller::None,
    Caller::Malformed,
    Caller::Unknown,
    Caller::Expired,
    Caller::Revoked,
    Caller::InferCredit,
    Caller::InferOther,
    Caller::Monitor,
    Caller::Deploy,
    Caller::Admin,
];

fn key(_name: &str, role: Role, models: &[&str]) -> (KeyRecord, String) {
    slipway_testkit::api_key(role, models)
}

/// The keys and each caller's Authorization value.
fn keys() -> (Vec<KeyRecord>, Vec<(Caller, Option<String>)>) {
    let mut records = Vec::new();
    let mut headers = vec![
        (Caller::None, None),
        (Caller::Malformed, Some("Bearer not-a-key".to_string())),
        (
            Caller::Unknown,
            Some(format!("Bearer {}", new_token().unwrap().2)),
        ),
    ];
    for (caller, role, models) in [
        (Caller::Expired, Role::Admin, &[][..]),
        (Caller::Revoked, Role::Admin, &[][..]),
        (Caller::InferCredit, Role::Infer, &["cred*"][..]),
        (Caller::InferOther, Role::Infer, &["fraud-*"][..]),
        (Caller::Monitor, Role::Monitor, &[][..]),
        (Caller::Deploy, Role::Deploy, &["credit"][..]),
        (Caller::Admin, Role::Admin, &[][..]),
    ] {
        let (mut record, token) = key(&format!("{caller:?}"), role, models);
        if caller == Caller::Expired {
            record.expires_at = Some(1);
        }
        if caller == Caller::Revoked {
            record.revoked_at = Some("2026-01-01T00:00:00Z".into());
        }
        records.push(record);
        headers.push((caller, Some(format!("Bearer {token}"))));
    }
    (records, headers)
}

/// A REST route: method, path, body, open to all, the role it needs, the model it names.
type Route<'a> = (
    &'a str,
    String,
    Vec<u8>,
    bool,
    Option<Role>,
    Option<&'a str>,
);

/// A gRPC request carrying `header` (if any) as `authorization` metadata.
fn with<T>(header: &Option<String>, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Some(h) = header {
        r.metadata_mut().insert("authorization", h.parse().unwrap());
    }
    r
}

/// The status a caller must get on a route that needs `need`:
/// `None` open, `Some(None)` any key, `Some(Some((role, model)))` a role over a model (or all).
fn expected(caller: Caller, role: Option<Role>, model: Option<&str>, open: bool) -> u16 {
    if open {
        return 200;
    }
    let (key_role, scope): (Role, &[&str]) = match caller {
        Caller::None | Caller::Malformed | Caller::Unknown | Caller::Expired | Caller::Revoked => {
            return 401;
        }
        Caller::InferCredit => (Role::Infer, &["credit"]),
        Caller::InferOther => (Role::Infer, &[]),
        Caller::Monitor => (Role::Monitor, &["credit", "cancer"]),
        Caller::Deploy => (Role::Deploy, &["credit"]),
        Caller::Admin => (Role::Admin, &["credit", "cancer"]),
    };
    if let Some(m) = model
        && !scope.contains(&m)
    {
        return 404;
    }
    match role {
        Some(r) if !key_role.allows(r) => 403,
        Some(_) | None => 200,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_call_for_every_kind_of_key() {
    let (records, headers) = keys();
    assert_eq!(
        headers.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        CALLERS,
        "every kind of caller is tried"
    );
    let server = common::start_with(Arc::new(Auth::on(records))).await;
    let http = reqwest::Client::new();
    let infer_body = {
        let rows: Vec<serde_json::Value> = slipway_testkit::credit_tensors()
            .iter()
            .map(|t| {
                let data = match &t.data {
                    slipway_core::TensorData::Fp64(v) => serde_json::json!(v[..1]),
                    slipway_core::TensorData::Bytes(v) => {
                        serde_json::json!([String::from_utf8_lossy(&v[0])])
                    }
                    other @ (slipway_core::TensorData::Bool(_)
                    | slipway_core::TensorData::Int64(_)
                    | slipway_core::TensorData::Fp32(_)) => panic!("{other:?}"),
                };
                let dt = if t.data.datatype() == slipway_core::DataType::Fp64 {
                    "FP64"
                } else {
                    "BYTES"
                };
                serde_json::json!({"name": t.name, "datatype": dt, "shape": [1], "data": data})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "inputs": rows })).unwrap()
    };
    // (method, path, body, open, role needed, model named)
    let routes: Vec<Route> = vec![
        ("GET", "/v2/health/live".into(), vec![], true, None, None),
        ("GET", "/v2/health/ready".into(), vec![], true, None, None),
        ("GET", "/".into(), vec![], true, None, None),
        ("GET", "/v2".into(), vec![], false, None, None),
        ("GET", "/v2/models".into(), vec![], false, None, None),
        (
            "GET",
            "/v2/models/credit".into(),
            vec![],
            false,
            Some(Role::Infer),
            Some("credit"),
        ),
        (
            "GET",
            "/v2/models/credit/versions/3".into(),
            vec![],
            false,
            Some(Role::Infer),
            Some("credit"),
        ),
        (
            "GET",
            "/v2/models/credit/ready".into(),
            vec![],
            false,
            Some(Role::Infer),
            Some("credit"),
        ),
        (
            "POST",
            "/v2/models/credit/infer".into(),
            infer_body.clone(),
            false,
            Some(Role::Infer),
            Some("credit"),
        ),
        (
            "POST",
            "/v2/models/cred%69t/infer".into(),
            infer_body.clone(),
            false,
            Some(Role::Infer),
            Some("credit"),
        ),
        (
            "GET",
            "/v2/models/cancer".into(),
            vec![],
            false,
            Some(Role::Infer),
            Some("cancer"),
        ),
        (
            "POST",
            "/v1/models/credit:predict".into(),
            br#"{"instances":[{"age_in_years":41}]}"#.to_vec(),
            false,
            Some(Role::Infer),
            Some("credit"),
        ),
        (
            "GET",
            "/v2/models/credit/stats".into(),
            vec![],
            false,
            Some(Role::Monitor),
            Some("credit"),
        ),
        (
            "GET",
            "/v2/models/stats".into(),
            vec![],
            false,
            Some(Role::Monitor),
            None,
        ),
        (
            "GET",
            "/metrics".into(),
            vec![],
            false,
            Some(Role::Monitor),
            None,
        ),
        (
            "POST",
            "/v2/repository/index".into(),
            vec![],
            false,
            Some(Role::Deploy),
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, open, role, model) in &routes {
        for (caller, header) in &headers {
            let mut req = http.request(method.parse().unwrap(), format!("{}{path}", server.http));
            if let Some(h) = header {
                req = req.header("authorization", h);
            }
            let r = req.body(body.clone()).send().await.unwrap();
            let got = r.status().as_u16();
            let want = expected(*caller, *role, *model, *open);
            if got == 401 && r.headers().get("www-authenticate").is_none() {
                failures.push(format!(
                    "{method} {path} as {caller:?}: 401 without WWW-Authenticate"
                ));
            }
            if got != want {
                failures.push(format!(
                    "{method} {path} as {caller:?}: {got}, expected {want}: {}",
                    r.text().await.unwrap_or_default()
                ));
            }
        }
    }
    // A key sees only its models in the list.
    let (_, credit_key) = &headers[5];
    let list: serde_json::Value = serde_json::from_str(
        &http
            .get(format!("{}/v2/models", server.http))
            .header("authorization", credit_key.clone().unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list, serde_json::json!({"models": ["credit"]}));

    // gRPC: the same checks in metadata; codes UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND.
    let channel = Channel::from_shared(server.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let code_of = |want: u16| match want {
        200 => Code::Ok,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        other => panic!("{other}"),
    };
    for (caller, header) in &headers {
        let mut client = GrpcInferenceServiceClient::new(channel.clone());
        let calls: Vec<(&str, Code, Code)> = vec![
            (
                "ServerLive",
                client
                    .server_live(with(header, pb::ServerLiveRequest {}))
                    .await
                    .err()
                    .map_or(Code::Ok, |s| s.code()),
                Code::Ok,
            ),
            (
                "ServerMetadata",
                client
                    .server_metadata(with(header, pb::ServerMetadataRequest {}))
                    .await
                    .err()
                    .map_or(Code::Ok, |s| s.code()),
                code_of(expected(*caller, None, None, false)),
            ),
            (
                "ModelMetadata credit",
                client
                    .model_metadata(with(
                        header,
                        pb::ModelMetadataRequest {
                            name: "credit".into(),
                            version: String::new(),
                        },
                    ))
                    .await
                    .err()
                    .map_or(Code::Ok, |s| s.code()),
                code_of(expected(*caller, Some(Role::Infer), Some("credit"), false)),
            ),
            (
                "ModelStatistics credit",
                client
                    .model_statistics(with(
                        header,
                        pb::ModelStatisticsRequest {
                            name: "credit".into(),
                            version: String::new(),
                        },
                    ))
                    .await
                    .err()
                    .map_or(Code::Ok, |s| s.code()),
                code_of(expected(
                    *caller,
                    Some(Role::Monitor),
                    Some("credit"),
                    false,
                )),
            ),
            (
                "RepositoryIndex",
                client
                    .repository_index(with(
                        header,
                        pb::RepositoryIndexRequest {
                            repository_name: String::new(),
                            ready: false,
                        },
                    ))
                    .await
                    .err()
                    .map_or(Code::Ok, |s| s.code()),
                code_of(expected(*caller, Some(Role::Deploy), None, false)),
            ),
        ];
        for (rpc, got, want) in calls {
            if got != want {
                failures.push(format!(
                    "gRPC {rpc} as {caller:?}: {got:?}, expected {want:?}"
                ));
            }
        }
    }
    // ModelReady: a model outside the key's scope reads as an unknown one, not ready.
    let mut client = GrpcInferenceServiceClient::new(channel.clone());
    for (caller, want) in [
        (Caller::InferCredit, Ok(true)),
        (Caller::InferOther, Ok(false)),
        (Caller::Monitor, Err(Code::PermissionDenied)),
        (Caller::None, Err(Code::Unauthenticated)),
    ] {
        let header = &headers.iter().find(|(c, _)| *c == caller).unwrap().1;
        let got = client
            .model_ready(with(
                header,
                pb::ModelReadyRequest {
                    name: "credit".into(),
                    version: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().ready)
            .map_err(|s| s.code());
        assert_eq!(got, want, "ModelReady as {caller:?}");
    }
    // Without a working key a stream is refused as it opens, before any message is read.
    let mut client = GrpcInferenceServiceClient::new(channel.clone());
    let messages = tokio_stream::iter(vec![pb::ModelInferRequest {
        model_name: "credit".into(),
        ..Default::default()
    }]);
    let opened = client.model_stream_infer(messages).await;
    assert_eq!(opened.err().map(|s| s.code()), Some(Code::Unauthenticated));
    // Refusals are counted by reason, never with a token.
    let (_, admin) = &headers[9];
    let metrics = http
        .get(format!("{}/metrics", server.http))
        .header("authorization", admin.clone().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("slipway_auth_refused_total{reason=\"unauthenticated\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("sk_"), "a token in /metrics");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_at_once_and_a_new_one_starts() {
    let (mut record, token) = key("app", Role::Infer, &[]);
    let auth = Arc::new(Auth::on(vec![record.clone()]));
    let server = common::start_with(Arc::clone(&auth)).await;
    let http = reqwest::Client::new();
    let status = |token: String| {
        let http = http.clone();
        let url = format!("{}/v2/models/credit", server.http);
        async move {
            http.get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(token.clone()).await, 200);
    record.revoked_at = Some("now".into());
    let (fresh, fresh_token) = key("app", Role::Infer, &[]);
    auth.set_keys(vec![record, fresh]);
    assert_eq!(status(token).await, 401);
    assert_eq!(status(fresh_token).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_and_another_key_is_unaffected() {
    let (mut limited, limited_token) = key("limited", Role::Infer, &[]);
    limited.rate = Some(5.0);
    let (free, free_token) = key("free", Role::Infer, &[]);
    let server = common::start_with(Arc::new(Auth::on(vec![limited, free]))).await;
    let http = reqwest::Client::new();
    let mut counts = std::collections::BTreeMap::new();
    let mut retry_after = None;
    for token in [&limited_token, &free_token] {
        for _ in 0..20 {
            let r = http
                .get(format!("{}/v2/models/credit", server.http))
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 429 {
                retry_after = r.headers().get("retry-after").cloned();
            }
            *counts
                .entry((token == &limited_token, r.status().as_u16()))
                .or_insert(0) += 1;
        }
    }
    // Twenty calls at once against 5/s with a one-second burst: about five pass (more only if
    // the calls took seconds), the rest are told to come back.
    let passed = counts.get(&(true, 200)).copied().unwrap_or(0);
    assert!((5..=10).contains(&passed), "{counts:?}");
    assert_eq!(
        passed + counts.get(&(true, 429)).copied().unwrap_or(0),
        20,
        "{counts:?}"
    );
    assert_eq!(retry_after.unwrap(), "1");
    assert_eq!(counts.get(&(false, 200)), Some(&20), "{counts:?}");
}
