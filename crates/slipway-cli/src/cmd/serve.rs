//! `slipway serve`: the Open Inference Protocol v2 over REST, for registry versions and
//! package folders.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use slipway_engine::{Engine, NanPolicy};
use slipway_registry::Reference;

use crate::cmd::registry::RegistryPath;

#[derive(Args)]
pub struct ServeArgs {
    /// Package folders to serve, each under its package name (version 1).
    #[arg(value_name = "PKG_DIR")]
    pub dirs: Vec<PathBuf>,
    /// A registry version to serve: NAME@ALIAS, NAME:VERSION or NAME (the latest). Repeatable.
    #[arg(long = "model", value_name = "REF")]
    pub models: Vec<String>,
    /// Serve every model of the registry that has this alias (e.g. production), each following
    /// its alias.
    #[arg(long, env = "SLIPWAY_ALIAS", value_name = "ALIAS")]
    pub alias: Option<String>,
    #[command(flatten)]
    pub registry: RegistryPath,
    /// Where REST listens (port 0 picks a free port, printed at start) [default: 127.0.0.1:8080].
    #[arg(long, env = "SLIPWAY_HTTP", value_name = "ADDR")]
    pub http: Option<String>,
    /// Where gRPC (inference.GRPCInferenceService) listens, e.g. 127.0.0.1:8081; off unless
    /// given.
    #[arg(long, env = "SLIPWAY_GRPC", value_name = "ADDR")]
    pub grpc: Option<String>,
    /// What a NaN in a float input means: `missing` (native models impute it, ONNX graphs get
    /// it as it is) or `reject` (400 / INVALID_ARGUMENT). Infinities are always refused
    /// [default: missing].
    #[arg(long, env = "SLIPWAY_NAN", value_name = "POLICY")]
    pub nan: Option<NanPolicy>,
    /// On SIGTERM or ctrl-c, how long to let in-flight requests finish before exiting anyway, in
    /// milliseconds [default: 10000].
    #[arg(long, env = "SLIPWAY_DRAIN_MS", value_name = "MS")]
    pub drain_ms: Option<u64>,
    /// Inference threads [default: one per core].
    #[arg(long, env = "SLIPWAY_WORKERS")]
    pub workers: Option<usize>,
    /// How often to check the registry for moved aliases, in milliseconds (0: never). A moved
    /// alias is loaded and warmed off the request path, then swapped in atomically [default: 1000].
    #[arg(long, env = "SLIPWAY_WATCH_MS", value_name = "MS")]
    pub watch_ms: Option<u64>,
    /// A TOML file with any of: http, grpc, workers, watch_ms, nan, drain_ms, registry,
    /// models = [..], packages = [..].
    /// Flags and SLIPWAY_* variables win over it; its lists add to the command line's.
    #[arg(long, env = "SLIPWAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `slipway serve --config FILE`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    http: Option<String>,
    grpc: Option<String>,
    workers: Option<usize>,
    watch_ms: Option<u64>,
    nan: Option<String>,
    drain_ms: Option<u64>,
    registry: Option<PathBuf>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    packages: Vec<PathBuf>,
}

impl Config {
    fn read(path: &std::path::Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).map_err(|e| slipway_learn::LearnError::io(path, e))?;
        toml::from_str(&text).map_err(|e| {
            slipway_registry::RegistryError::Invalid(format!("{}: {e}", path.display())).into()
        })
    }
}

/// Request logs on stderr: JSON lines when stderr is not a terminal (for log collectors), human
/// lines when it is. `SLIPWAY_LOG` filters (`info` by default; `warn` keeps only failures).
fn init_logs() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}

pub fn run(mut args: ServeArgs) -> Result<()> {
    init_logs();
    if let Some(path) = &args.config {
        let c = Config::read(path)?;
        args.http = args.http.or(c.http);
        args.workers = args.workers.or(c.workers);
        args.watch_ms = args.watch_ms.or(c.watch_ms);
        args.grpc = args.grpc.or(c.grpc);
        args.drain_ms = args.drain_ms.or(c.drain_ms);
        if args.nan.is_none()
            && let Some(n) = c.nan
        {
            args.nan = Some(n.parse().map_err(|e: String| {
                slipway_registry::RegistryError::Invalid(format!("{}: nan: {e}", path.display()))
            })?);
        }
        args.models.extend(c.models);
        args.dirs.extend(c.packages);
        // The registry flag has a default: the file's applies when neither flag nor variable set one.
        if let Some(r) = c.registry
            && std::env::var_os("SLIPWAY_REGISTRY").is_none()
            && args.registry.path.as_os_str() == slipway_registry::DEFAULT_REGISTRY
        {
            args.registry.path = r;
        }
    }
    let http = args.http.clone().unwrap_or_else(|| "127.0.0.1:8080".into());
    let watch_ms = args.watch_ms.unwrap_or(1000);
    if let Some(alias) = &args.alias {
        let registry = args.registry.open()?;
        let mut found = 0;
        for m in registry.meta().list_models()? {
            if m.aliases.contains_key(alias) {
                args.models.push(format!("{}@{alias}", m.name));
                found += 1;
            }
        }
        if found == 0 {
            return Err(slipway_registry::RegistryError::NotFound(format!(
                "no model in {} has the alias `{alias}`; promote one first (slipway promote NAME:V --to {alias})",
                args.registry.path.display()
            ))
            .into());
        }
    }
    if args.dirs.is_empty() && args.models.is_empty() {
        return Err(slipway_registry::RegistryError::Invalid(
            "nothing to serve: give package folders or --model NAME@ALIAS (e.g. --model credit@production)".into(),
        )
        .into());
    }
    let start = std::time::Instant::now();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let engine = Arc::new(Engine::new(workers).with_nan_policy(args.nan.unwrap_or_default()));
    let drain = std::time::Duration::from_millis(args.drain_ms.unwrap_or(10_000));
    let grpc = args.grpc.clone();
    for dir in &args.dirs {
        let loaded = slipway_runtime::load(dir)?;
        let name = loaded.manifest.name.clone();
        engine.add(&name, "1", loaded);
        eprintln!("loaded {name} (version 1) from {}", dir.display());
    }
    let mut follow = Vec::new();
    if !args.models.is_empty() {
        let registry = args.registry.open()?;
        for m in &args.models {
            let reference: Reference = m.parse()?;
            let version = registry.resolve(&reference)?;
            let dir = registry.materialize(&version)?;
            let loaded = slipway_runtime::load(&dir)?;
            engine.add(&version.model, &version.version.to_string(), loaded);
            eprintln!("loaded {}:{} for {m}", version.model, version.version);
            follow.push((version.model.clone(), reference));
        }
    }
    // The repository extension's `load`: a name followed on the command line reloads its
    // reference; any other name loads its latest version.
    let loader: Option<slipway_server::Loader> =
        args.registry.path.join("registry.db").is_file().then(|| {
            let root = args.registry.path.clone();
            let refs = follow.clone();
            let loader: slipway_server::Loader = Arc::new(move |name: &str| {
                let registry =
                    slipway_registry::Registry::open_existing(&root).map_err(|e| e.to_string())?;
                let reference = match refs.iter().find(|(n, _)| n == name) {
                    Some((_, r)) => r.clone(),
                    None => name.parse::<Reference>().map_err(|e| e.to_string())?,
                };
                let version = registry.resolve(&reference).map_err(|e| e.to_string())?;
                let dir = registry.materialize(&version).map_err(|e| e.to_string())?;
                let loaded = slipway_runtime::load(&dir).map_err(|e| e.to_string())?;
                Ok((version.version.to_string(), loaded))
            });
            loader
        });
    let watcher = (watch_ms > 0 && !follow.is_empty()).then(|| {
        slipway_engine::Watcher::start(
            Arc::clone(&engine),
            args.registry.path.clone(),
            follow,
            std::time::Duration::from_millis(watch_ms),
            |line| eprintln!("{line}"),
        )
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&http)
            .await
            .with_context(|| format!("cannot listen on {http}"))?;
        let addr = listener.local_addr()?;
        let grpc_listener = match &grpc {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on {a} (--grpc)"))?,
            ),
            None => None,
        };
        let grpc_text = match &grpc_listener {
            Some(l) => format!(" and grpc://{} (OIP v2 gRPC)", l.local_addr()?),
            None => String::new(),
        };
        println!(
            "serving {} model(s) on http://{addr} (OIP v2 REST){grpc_text}; ready in {} ms — ctrl-c to stop",
            engine.models().len(),
            start.elapsed().as_millis()
        );
        for m in engine.models() {
            println!("  curl -s http://{addr}/v2/models/{}", m.name);
        }
        let drained = slipway_server::serve_all(
            listener,
            grpc_listener,
            Arc::clone(&engine),
            loader,
            shutdown_signal(),
            drain,
        )
        .await?;
        if !drained {
            eprintln!(
                "stopped after {} ms with requests still running (--drain-ms)",
                drain.as_millis()
            );
            // Exit now: the runtime and the inference threads are not waited for.
            std::process::exit(0);
        }
        if let Some(w) = watcher {
            w.stop();
        }
        engine.shutdown();
        eprintln!("stopped: in-flight requests finished");
        anyhow::Ok(())
    })
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
