//! The HTTP ceiling for `bench/serve.sh`: an axum handler that reads the request body and
//! returns a fixed V2-shaped JSON reply, on the same runtime settings as `slipway serve` (one
//! network thread per core it may run on, the single-threaded runtime on one core,
//! TCP_NODELAY). Whatever Slipway does beyond this is its own cost.
//!
//! `cargo run --release -p slipway-server --example bare_http -- 127.0.0.1:18090`

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use axum::serve::ListenerExt;

const REPLY: &str = r#"{"model_name":"m","model_version":"1","outputs":[{"name":"probabilities","datatype":"FP32","shape":[1,2],"data":[0.1,0.9]}]}"#;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let runtime = slipway_server::network_runtime().expect("runtime");
    runtime.block_on(async move {
        let app = Router::new().route(
            "/v2/models/{m}/infer",
            post(|body: Bytes| async move {
                std::hint::black_box(body.len());
                ([("content-type", "application/json")], REPLY)
            }),
        );
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("binding");
        println!("bare http on {}", listener.local_addr().expect("address"));
        axum::serve(
            listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            app,
        )
        .await
        .expect("serving");
    });
}
