//! Slipway's front door: the Open Inference Protocol v2 over REST (JSON and the binary tensor
//! data extension) and gRPC, wire-compatible with Triton's and KServe's clients, and the V1
//! records API for people with curl. [`serve`] runs both over one engine; [`router`] is the
//! REST app that `slipway serve` and the tests share.
//!
//! The rooms: `error` (the one error enum and its two mappings), `state` (what handlers
//! share), `pipeline` (the one inference path), `http` (routes, middleware, handlers by
//! family), `grpc`, `oip` (the V2 wire codec), `v1` (the records codec), `describe` (metadata
//! and statistics for both transports), `repository` (index, load, unload), `metrics`,
//! `serve` (listeners, shutdown and drain).

pub mod auth;
mod describe;
mod error;
pub mod grpc;
mod http;
pub mod metrics;
pub mod oip;
mod pipeline;
mod repository;
mod serve;
mod state;
mod v1;

pub use error::{ApiError, MAX_MESSAGE};
pub use http::router;
pub use serve::{LISTEN_BACKLOG, ServerConfig, Stopped, bind, listen, serve};
pub use state::{Shared, UnknownColumns};

/// Largest request body (REST) or message (gRPC) accepted; Triton's REST default is 64 MiB.
pub const MAX_BODY: usize = 64 << 20;

/// The protocol extensions served, as server metadata lists them.
pub const EXTENSIONS: [&str; 3] = ["binary_tensor_data", "statistics", "model_repository"];

/// The runtime the network side runs on: one thread per core the process may run on
/// (`taskset` and CPU-limited containers narrow it), since more threads than cores only add
/// context switches. On one core the single-threaded runtime does the same work without the
/// work-stealing machinery (about 5 % more single-row requests per second, and a lower p99).
///
/// The network threads run at a lower scheduling priority than the models' workers
/// ([`yield_to_models`]): under overload the threads that read and refuse requests would
/// otherwise take an equal share of the core from the model, and the requests the model could
/// have answered would be lost with the ones refused.
pub fn network_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores == 1 {
        // The runtime runs on the thread that calls `block_on`; it calls `yield_to_models`.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .on_thread_start(yield_to_models)
            .enable_all()
            .build()
    }
}

/// How much lower the network threads' priority is than the models' (nice +10: the
/// scheduler gives a busy worker about nine times the CPU of a busy network thread).
pub const NETWORK_NICENESS: i32 = 10;

/// Lowers the calling thread's scheduling priority by [`NETWORK_NICENESS`] (on Linux, nice
/// is per thread). For the thread that runs a current-thread network runtime; the models'
/// workers are spawned elsewhere and keep the normal priority. Best effort: where the system
/// refuses, nothing changes.
pub fn yield_to_models() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::process::nice(NETWORK_NICENESS);
    }
}

/// A fresh request id for a request that came without `x-request-id`.
pub fn new_request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    // `process::id()` is a system call each time (glibc no longer caches it): once is enough.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("slipway-{}-{n}", PID.get_or_init(std::process::id))
}
