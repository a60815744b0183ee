//! Serving REST and gRPC over one engine until a shutdown signal, then draining: both stop
//! accepting, the requests in flight finish, and what has not finished by the deadline is
//! abandoned (and said so, so the process can exit non-zero).

use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use slipway_engine::Engine;

use crate::state::UnknownColumns;
use crate::{Shared, grpc, http, metrics};

/// How `slipway serve` (or a test, or an embedding program) runs the front door.
pub struct ServerConfig {
    /// REST (OIP v2, V1 records, `/metrics`).
    pub http: tokio::net::TcpListener,
    /// gRPC (OIP v2), when given.
    pub grpc: Option<tokio::net::TcpListener>,
    /// How long requests in flight may take to finish once shutdown begins.
    pub drain: Duration,
    /// What the V1 records API does with a field that is not one of the model's columns.
    pub v1_unknown_columns: UnknownColumns,
    /// Who may call what: API keys checked on every route and call but health (default: off).
    pub auth: Arc<crate::auth::Auth>,
}

impl ServerConfig {
    /// REST on `http`, no gRPC, a 10-second drain and the default rules.
    pub fn new(http: tokio::net::TcpListener) -> ServerConfig {
        ServerConfig {
            http,
            grpc: None,
            drain: Duration::from_secs(10),
            v1_unknown_columns: UnknownColumns::default(),
            auth: Arc::new(crate::auth::Auth::off()),
        }
    }
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every request in flight at shutdown finished.
    Drained,
    /// Requests still running at the drain deadline were abandoned.
    Abandoned,
}

/// Connections a listener holds before they are accepted. The kernel's default for a plain
/// `bind` is 128: a burst of connections larger than that, while the network thread is busy,
/// overflows the queue and clients see resets (512 clients connecting at once to a one-core
/// server did). The kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (`host:port`; port 0 picks a free one) without listening yet: a port that is
/// taken is found now, while connections are still refused until [`TcpSocket::listen`]
/// (`slipway serve` binds before it loads its models and listens once they are ready). Each
/// address `addr` resolves to is tried in turn.
///
/// [`TcpSocket::listen`]: tokio::net::TcpSocket::listen
pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpSocket> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        // On Unix, SO_REUSEADDR only lets a restarted server take its port back from
        // connections in TIME_WAIT; on Windows it would let two servers share a port.
        #[cfg(unix)]
        let socket = socket.and_then(|s| s.set_reuseaddr(true).map(|()| s));
        match socket.and_then(|s| s.bind(a).map(|()| s)) {
            Ok(socket) => return Ok(socket),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} names no address"),
        )
    }))
}

/// Binds and listens on `addr` with [`LISTEN_BACKLOG`].
pub async fn listen(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    bind(addr).await?.listen(LISTEN_BACKLOG)
}

/// Serves `engine` as `config` says until `shutdown` resolves, then drains.
pub async fn serve(
    config: ServerConfig,
    engine: Arc<Engine>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<Stopped> {
    use std::future::IntoFuture;
    let shared = Arc::new(Shared {
        engine,
        metrics: metrics::Metrics::new(),
        v1_unknown_columns: config.v1_unknown_columns,
        auth: config.auth,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let rest = axum::serve(
        config.http.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        http::router(Arc::clone(&shared))
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(signal(stopped.clone()))
    .into_future();
    let grpc = async {
        let Some(listener) = config.grpc else {
            return Ok(());
        };
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .layer(tower::util::MapResponseLayer::new(
                grpc::too_large_is_resource_exhausted,
            ))
            .layer(grpc::gate::GateLayer {
                shared: Arc::clone(&shared),
            })
            .add_service(grpc::service(Arc::clone(&shared)))
            .serve_with_incoming_shutdown(incoming, signal(stopped.clone()))
            .await
            .map_err(std::io::Error::other)
    };
    let servers = async { tokio::try_join!(rest, grpc).map(|_| ()) };
    tokio::pin!(servers);
    tokio::select! {
        done = &mut servers => return done.map(|()| Stopped::Drained),
        () = shutdown => {}
    }
    let _ = stop.send(true);
    let drain_ms = u64::try_from(config.drain.as_millis()).unwrap_or(u64::MAX);
    match tokio::time::timeout(config.drain, servers).await {
        Ok(done) => done.map(|()| Stopped::Drained),
        // Connections a client keeps open (an idle HTTP/2 channel) outlive the deadline
        // without any request in them: nothing was cut off.
        Err(_) if shared.metrics.in_flight_now() == 0 => {
            tracing::info!(
                drain_ms,
                "idle connections still open at the shutdown deadline were closed"
            );
            Ok(Stopped::Drained)
        }
        Err(_) => {
            tracing::warn!(
                drain_ms,
                in_flight = shared.metrics.in_flight_now(),
                "requests still in flight at the shutdown deadline were abandoned"
            );
            Ok(Stopped::Abandoned)
        }
    }
}
