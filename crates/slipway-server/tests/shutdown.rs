//! Graceful shutdown over the wire: requests in flight when the signal comes finish and are
//! answered; past the drain deadline the server stops waiting for them.

use std::sync::Arc;
use std::time::Duration;

use slipway_core::{CoreError, Model, Signature, Tensor};
use slipway_engine::Engine;

mod common;
use common::repo;

/// The credit model, taking `delay` longer per batch (a model slower than its deadline).
struct Slow {
    inner: Arc<dyn Model>,
    delay: Duration,
}

impl Model for Slow {
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, CoreError> {
        std::thread::sleep(self.delay);
        self.inner.infer(inputs)
    }
}

/// Serves the slow credit model, sends one V1 request, signals shutdown while it runs, and
/// returns the request's status (if it was answered) and whether the server drained.
async fn shut_down_during_a_request(delay: Duration, drain: Duration) -> (Option<u16>, bool) {
    let mut loaded =
        slipway_runtime::load(&repo().join("conformance/native/native_logistic_credit")).unwrap();
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
    let server = tokio::spawn(slipway_server::serve_all(
        listener,
        None,
        engine,
        None,
        async move {
            let _ = stopped.await;
        },
        drain,
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
    let drained = server.await.unwrap().unwrap();
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
