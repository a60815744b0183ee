//! `slipway keys` and `slipway serve --auth` as processes: a token printed once and stored as a
//! hash; a server that would be open to the network without keys refuses to start; with a key
//! in the registry every call but health needs it; a revoked key stops within the watch interval.

mod common;

use std::process::Stdio;

use common::{credit_package, fails, http, ok_json, s, start_serve, stop};

fn get(addr: &str, path: &str, token: Option<&str>) -> u16 {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let answer = http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
    );
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn keys_guard_a_running_server_and_revocation_reaches_it() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("reg");
    let pkg = credit_package();
    ok_json(&[
        "register",
        s(&pkg),
        "--name",
        "credit",
        "--alias",
        "production",
        "--registry",
        s(&reg),
        "--json",
    ]);

    // Beyond loopback with no key: refused, saying how to make one or opt out.
    let (code, err) = fails(&[
        "serve",
        "--model",
        "credit@production",
        "--registry",
        s(&reg),
        "--http",
        "0.0.0.0:0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("slipway keys create") && err.contains("--auth none"),
        "{err}"
    );
    // On loopback with no key it serves as before.
    let (mut child, addr) = start_serve(
        &[
            "--model",
            "credit@production",
            "--registry",
            s(&reg),
            "--http",
            "127.0.0.1:0",
            "--watch-ms",
            "100",
        ],
        Stdio::null(),
    );
    assert_eq!(get(&addr, "/v2/models/credit", None), 200);

    let key = ok_json(&[
        "keys",
        "create",
        "--name",
        "scoring-app",
        "--role",
        "infer",
        "--models",
        "credit",
        "--registry",
        s(&reg),
        "--json",
    ]);
    let token = key["token"].as_str().unwrap().to_string();
    // The first key turns the running server's checks on, without a restart.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while get(&addr, "/v2/models/credit", None) != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the new key did not turn checks on"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(get(&addr, "/v2/models/credit", Some(&token)), 200);
    stop(&mut child);
    assert!(token.starts_with(&format!("sk_{}_", key["id"].as_str().unwrap())));
    // Only a hash is kept: the database does not hold the token or its secret.
    let db = std::fs::read(reg.join("registry.db")).unwrap();
    let secret = token.rsplit('_').next().unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let listed = ok_json(&["keys", "list", "--registry", s(&reg), "--json"]);
    assert!(!listed.to_string().contains(secret));

    let (mut child, addr) = start_serve(
        &[
            "--model",
            "credit@production",
            "--registry",
            s(&reg),
            "--http",
            "127.0.0.1:0",
            "--watch-ms",
            "100",
        ],
        Stdio::null(),
    );
    assert_eq!(get(&addr, "/v2/health/ready", None), 200);
    assert_eq!(get(&addr, "/v2/models/credit", None), 401);
    assert_eq!(get(&addr, "/v2/models/credit", Some(&token)), 200);
    assert_eq!(get(&addr, "/metrics", Some(&token)), 403);
    // A new key works without a restart; a revoked one stops.
    let ops = ok_json(&[
        "keys",
        "create",
        "--name",
        "ops",
        "--role",
        "monitor",
        "--registry",
        s(&reg),
        "--json",
    ]);
    ok_json(&[
        "keys",
        "revoke",
        key["id"].as_str().unwrap(),
        "--registry",
        s(&reg),
        "--json",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while get(&addr, "/v2/models/credit", Some(&token)) != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked key still works"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        get(&addr, "/metrics", Some(ops["token"].as_str().unwrap())),
        200
    );
    // An unload through the API is audited with the key and the client's address.
    let deploy = ok_json(&[
        "keys",
        "create",
        "--name",
        "release-bot",
        "--role",
        "deploy",
        "--models",
        "credit",
        "--registry",
        s(&reg),
        "--json",
    ]);
    let unload = |token: &str| {
        http(
            &addr,
            &format!(
                "POST /v2/repository/models/credit/unload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut answer = unload(deploy["token"].as_str().unwrap());
    while answer.starts_with("HTTP/1.1 401") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        answer = unload(deploy["token"].as_str().unwrap());
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop(&mut child);
    let audit = ok_json(&["registry", "audit", "--registry", s(&reg), "--json"]);
    let unloaded = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "serve.unload")
        .unwrap_or_else(|| panic!("no unload in {audit}"));
    assert_eq!(unloaded["model"], "credit");
    assert!(
        unloaded["by"]
            .as_str()
            .unwrap()
            .contains(deploy["id"].as_str().unwrap()),
        "{unloaded}"
    );
    assert!(
        unloaded["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{unloaded}"
    );

    let audit = ok_json(&["registry", "audit", "--registry", s(&reg), "--json"]);
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"keys.create") && actions.contains(&"keys.revoke"),
        "{actions:?}"
    );
    assert!(!audit.to_string().contains(secret));
}
