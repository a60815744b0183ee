//! `slipway serve`: the Open Inference Protocol v2 over REST and gRPC, for registry versions
//! and package folders, each model with its own queue, workers and dynamic batching.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use slipway_engine::{Engine, Event, NanPolicy, Source};
use slipway_registry::Reference;

use crate::cmd::registry::RegistryPath;

/// `slipway serve`'s settings, from its flags and `SLIPWAY_*` variables, or from a TOML file
/// (`--config`), which has the same names (`packages` for the folders, `[model_config.NAME]`
/// tables for `--model-config`, `registry` for the registry's path).
#[derive(Args, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeArgs {
    /// Package folders to serve, each under its package name (version 1).
    #[arg(value_name = "PKG_DIR")]
    #[serde(rename = "packages")]
    pub dirs: Vec<PathBuf>,
    /// A registry version to serve: NAME@ALIAS, NAME:VERSION or NAME (the latest). Repeatable.
    #[arg(long = "model", value_name = "REF")]
    pub models: Vec<String>,
    /// Serve every model of the registry that has this alias (e.g. production), each following
    /// its alias.
    #[arg(long, env = "SLIPWAY_ALIAS", value_name = "ALIAS")]
    pub alias: Option<String>,
    #[command(flatten)]
    #[serde(deserialize_with = "registry_path")]
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
    #[serde(deserialize_with = "parsed")]
    pub nan: Option<NanPolicy>,
    /// On SIGTERM or ctrl-c, how long to let in-flight requests finish before exiting anyway, in
    /// milliseconds [default: 10000].
    #[arg(long, env = "SLIPWAY_DRAIN_MS", value_name = "MS")]
    pub drain_ms: Option<u64>,
    /// Inference threads of each model (its instances) [default: one per core].
    #[arg(long, env = "SLIPWAY_WORKERS")]
    pub workers: Option<usize>,
    /// Dynamic batching: most rows merged into one batch; 0 turns batching off [default: 64].
    #[arg(long, env = "SLIPWAY_MAX_BATCH_SIZE", value_name = "ROWS")]
    pub max_batch_size: Option<usize>,
    /// Dynamic batching: how long a batch's first request may wait for others, in µs. 0 merges
    /// only requests already waiting, adding no latency [default: 0].
    #[arg(long, env = "SLIPWAY_MAX_QUEUE_DELAY_US", value_name = "US")]
    pub max_queue_delay_us: Option<u64>,
    /// Dynamic batching: batch sizes (rows) that run at once, e.g. 8,16,32.
    #[arg(
        long,
        env = "SLIPWAY_PREFERRED_BATCH_SIZES",
        value_name = "ROWS,…",
        value_delimiter = ','
    )]
    pub preferred_batch_sizes: Option<Vec<usize>>,
    /// Rows each model may have in hand (being decoded, queued or running); a request that
    /// would pass it is answered 503 with Retry-After (gRPC UNAVAILABLE) at once [default: 2048].
    #[arg(long, env = "SLIPWAY_QUEUE_CAPACITY", value_name = "N")]
    pub queue_capacity: Option<usize>,
    /// On one core (taskset, a one-CPU container), a model whose batch is expected to compute
    /// within this many µs runs it on the network thread instead of its worker thread, which
    /// saves two context switches per request; slower models keep to their workers. 0: always
    /// the workers [default: 500].
    #[arg(long, env = "SLIPWAY_INLINE_BUDGET_US", value_name = "US")]
    pub inline_budget_us: Option<u64>,
    /// One model's settings, over the defaults: NAME:KEY=VALUE,… with instances,
    /// max_batch_size, max_queue_delay_us, preferred_batch_sizes (8|16), queue_capacity,
    /// inline_budget_us, batching=off. Repeatable.
    #[arg(long = "model-config", value_name = "NAME:SETTINGS")]
    #[serde(rename = "model_config", deserialize_with = "model_tables")]
    pub model_configs: Vec<String>,
    /// What the V1 records API does with a record field that is not one of the model's
    /// columns: `refuse` (400, the default) or `ignore`.
    #[arg(long, env = "SLIPWAY_V1_UNKNOWN_COLUMNS", value_name = "refuse|ignore")]
    #[serde(deserialize_with = "parsed")]
    pub v1_unknown_columns: Option<slipway_server::UnknownColumns>,
    /// API keys: `auto` checks them as soon as the registry holds one (a server beyond
    /// loopback with none refuses to start), `required` always, `none` never (warned about
    /// beyond loopback) [default: auto].
    #[arg(long, env = "SLIPWAY_AUTH", value_name = "auto|required|none")]
    #[serde(deserialize_with = "parsed")]
    pub auth: Option<crate::cmd::serve_auth::AuthMode>,
    /// How often to check the registry for moved aliases, in milliseconds (0: never). A moved
    /// alias is loaded and warmed off the request path, then swapped in atomically [default: 1000].
    #[arg(long, env = "SLIPWAY_WATCH_MS", value_name = "MS")]
    pub watch_ms: Option<u64>,
    /// A TOML file with any of: http, grpc, alias, workers, watch_ms, nan, drain_ms,
    /// max_batch_size, max_queue_delay_us, preferred_batch_sizes, queue_capacity,
    /// inline_budget_us, v1_unknown_columns, auth, registry, models = [..], packages = [..], and
    /// [model_config.NAME] tables with one model's settings.
    /// Flags and SLIPWAY_* variables win over it; its lists add to the command line's.
    #[arg(long, env = "SLIPWAY_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl ServeArgs {
    /// Reads a `--config` file.
    fn read(path: &std::path::Path) -> Result<ServeArgs> {
        let text =
            std::fs::read_to_string(path).map_err(|e| slipway_learn::LearnError::io(path, e))?;
        toml::from_str(&text).map_err(|e| {
            slipway_registry::RegistryError::Invalid(format!("{}: {e}", path.display())).into()
        })
    }

    /// These settings over `file`'s: what the command line (flags and `SLIPWAY_*` variables)
    /// left unset comes from the file; its lists add to the command line's, its per-model
    /// tables first so that flags for the same model win. Every field is named, so a new
    /// setting cannot be forgotten here.
    fn over(mut self, file: ServeArgs) -> ServeArgs {
        let ServeArgs {
            dirs,
            models,
            alias,
            registry,
            http,
            grpc,
            nan,
            drain_ms,
            workers,
            max_batch_size,
            max_queue_delay_us,
            preferred_batch_sizes,
            queue_capacity,
            inline_budget_us,
            mut model_configs,
            v1_unknown_columns,
            auth,
            watch_ms,
            config: _,
        } = file;
        self.dirs.extend(dirs);
        self.models.extend(models);
        model_configs.append(&mut self.model_configs);
        self.model_configs = model_configs;
        // The registry flag has a default: the file's applies when neither flag nor variable set one.
        if std::env::var_os("SLIPWAY_REGISTRY").is_none()
            && self.registry.path.as_os_str() == slipway_registry::DEFAULT_REGISTRY
        {
            self.registry = registry;
        }
        self.alias = self.alias.or(alias);
        self.http = self.http.or(http);
        self.grpc = self.grpc.or(grpc);
        self.nan = self.nan.or(nan);
        self.drain_ms = self.drain_ms.or(drain_ms);
        self.workers = self.workers.or(workers);
        self.max_batch_size = self.max_batch_size.or(max_batch_size);
        self.max_queue_delay_us = self.max_queue_delay_us.or(max_queue_delay_us);
        self.preferred_batch_sizes = self.preferred_batch_sizes.or(preferred_batch_sizes);
        self.queue_capacity = self.queue_capacity.or(queue_capacity);
        self.inline_budget_us = self.inline_budget_us.or(inline_budget_us);
        self.v1_unknown_columns = self.v1_unknown_columns.or(v1_unknown_columns);
        self.watch_ms = self.watch_ms.or(watch_ms);
        self.auth = self.auth.or(auth);
        self
    }
}

/// A TOML string read with the value's `FromStr`, as its flag is.
fn parsed<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let text = <String as serde::Deserialize>::deserialize(d)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// `registry = "PATH"`.
fn registry_path<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<RegistryPath, D::Error> {
    Ok(RegistryPath {
        path: serde::Deserialize::deserialize(d)?,
    })
}

/// `[model_config.NAME]` tables as `--model-config NAME:KEY=VALUE,…` strings.
fn model_tables<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    let tables: std::collections::BTreeMap<String, toml::Table> =
        serde::Deserialize::deserialize(d)?;
    Ok(tables
        .iter()
        .map(|(name, table)| {
            let settings: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{k}={}", toml_setting(v)))
                .collect();
            format!("{name}:{}", settings.join(","))
        })
        .collect())
}

/// A `[model_config.NAME]` value as `ModelConfig::apply` reads it (lists joined with `|`).
fn toml_setting(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items.iter().map(toml_setting).collect::<Vec<_>>().join("|"),
        toml::Value::Datetime(d) => format!("{d:?}"),
        toml::Value::Table(_) => "<table>".into(),
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
    if let Some(path) = args.config.clone() {
        args = args.over(ServeArgs::read(&path)?);
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
    // Keys before ports: a server that would be open to the network without them stops here.
    let mut listens = vec![http.as_str()];
    if let Some(g) = &args.grpc {
        listens.push(g.as_str());
    }
    let auth = crate::cmd::serve_auth::decide(
        args.auth.unwrap_or_default(),
        &args.registry.path,
        &listens,
    )?;
    // The ports are bound before any model is loaded, so a busy port is reported at once; they
    // listen once the models are ready.
    let runtime = slipway_server::network_runtime().context("starting the async runtime")?;
    let (http_socket, grpc_socket) = runtime.block_on(async {
        let http_socket = slipway_server::bind(&http)
            .await
            .map_err(|e| cannot_listen(&http, "--http", &e))?;
        let grpc_socket = match &args.grpc {
            Some(a) => Some((
                a.clone(),
                slipway_server::bind(a)
                    .await
                    .map_err(|e| cannot_listen(a, "--grpc", &e))?,
            )),
            None => None,
        };
        anyhow::Ok((http_socket, grpc_socket))
    })?;
    let start = std::time::Instant::now();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut defaults = slipway_engine::ModelConfig {
        instances: workers.max(1),
        ..slipway_engine::ModelConfig::default()
    };
    if let Some(n) = args.max_batch_size {
        defaults.max_batch_size = n;
    }
    if let Some(us) = args.max_queue_delay_us {
        defaults.max_queue_delay = std::time::Duration::from_micros(us);
    }
    if let Some(sizes) = args.preferred_batch_sizes.clone() {
        defaults.preferred_batch_sizes = sizes;
    }
    if let Some(n) = args.queue_capacity {
        defaults.queue_capacity = n.max(1);
    }
    if let Some(us) = args.inline_budget_us {
        defaults.inline_budget = std::time::Duration::from_micros(us);
    }
    let engine = Engine::with_defaults(defaults.clone())
        .with_nan_policy(args.nan.unwrap_or_default())
        .with_registry(args.registry.path.clone());
    for spec in &args.model_configs {
        let bad = |m: String| {
            slipway_registry::RegistryError::Invalid(format!("--model-config {spec}: {m}"))
        };
        let (name, settings) = spec
            .split_once(':')
            .ok_or_else(|| bad("expected NAME:KEY=VALUE,…".into()))?;
        let mut config = engine.model_config(name);
        config.apply(settings).map_err(bad)?;
        engine.set_model_config(name, config);
    }
    let engine = Arc::new(engine);
    let drain = std::time::Duration::from_millis(args.drain_ms.unwrap_or(10_000));
    for dir in &args.dirs {
        let loaded = slipway_runtime::load(dir)?;
        let name = loaded.manifest.name.clone();
        engine.repository().add(&name, Source::Folder(dir.clone()));
        engine.add(&name, "1", loaded);
        eprintln!("loaded {name} (version 1) from {}", dir.display());
    }
    if !args.models.is_empty() {
        // A reference that names no model or alias is a mistake in the command: refused here.
        // A package that does not load is not: the others are served, and it is reported.
        let registry = args.registry.open()?;
        for m in &args.models {
            let reference: Reference = m.parse()?;
            registry.resolve(&reference)?;
            engine
                .repository()
                .add(&reference.model.clone(), Source::Registry(reference));
        }
    }
    // Every name is known now (folders loaded, registry models added): settings for another
    // name are refused before any registry model is loaded.
    refuse_unserved_settings(&engine, &args.model_configs)?;
    if !args.models.is_empty() {
        for event in engine.repository().sync(&engine) {
            log_event(&event);
        }
    }
    let watcher = (watch_ms > 0 && !args.models.is_empty()).then(|| {
        slipway_engine::Watcher::start(
            Arc::clone(&engine),
            std::time::Duration::from_millis(watch_ms),
            log_event,
        )
    });
    crate::cmd::serve_auth::follow(
        Arc::clone(&auth),
        args.registry.path.clone(),
        // At most ten reads a second, and every second when the alias watch is off.
        std::time::Duration::from_millis(if watch_ms > 0 {
            watch_ms.max(100)
        } else {
            1000
        }),
    );
    runtime.block_on(async move {
        // On one core this thread is the network runtime: it yields the core to the models.
        if std::thread::available_parallelism().map_or(1, usize::from) == 1 {
            slipway_server::yield_to_models();
        }
        let listener = http_socket
            .listen(slipway_server::LISTEN_BACKLOG)
            .map_err(|e| cannot_listen(&http, "--http", &e))?;
        let grpc_listener = match grpc_socket {
            Some((a, socket)) => Some(
                socket
                    .listen(slipway_server::LISTEN_BACKLOG)
                    .map_err(|e| cannot_listen(&a, "--grpc", &e))?,
            ),
            None => None,
        };
        let addr = listener.local_addr()?;
        let grpc_text = match &grpc_listener {
            Some(l) => format!(" and grpc://{} (OIP v2 gRPC)", l.local_addr()?),
            None => String::new(),
        };
        let shutdown = shutdown_signal();
        println!(
            "serving {} model(s) on http://{addr} (OIP v2 REST){grpc_text}; ready in {} ms — ctrl-c to stop",
            engine.models().len(),
            start.elapsed().as_millis()
        );
        for m in engine.models() {
            println!("  curl -s http://{addr}/v2/models/{}", m.name);
        }
        let config = slipway_server::ServerConfig {
            http: listener,
            grpc: grpc_listener,
            drain,
            v1_unknown_columns: args.v1_unknown_columns.unwrap_or_default(),
            auth: Arc::clone(&auth),
        };
        let stopped =
            slipway_server::serve(config, Arc::clone(&engine), shutdown).await?;
        if stopped == slipway_server::Stopped::Abandoned {
            eprintln!(
                "stopped after {} ms with requests still running (--drain-ms): they were abandoned",
                drain.as_millis()
            );
            // Exit now, and not with success: requests were cut off. The runtime and the
            // inference threads are not waited for.
            std::process::exit(75);
        }
        if let Some(w) = watcher {
            w.stop();
        }
        engine.shutdown();
        eprintln!("stopped: in-flight requests finished");
        anyhow::Ok(())
    })
}

/// Per-model settings for a name the server does not serve are a mistake (a misspelt name
/// would otherwise leave the real model on the defaults without a word): refused, listing the
/// names it serves.
fn refuse_unserved_settings(engine: &Engine, settings: &[String]) -> Result<()> {
    for spec in settings {
        let name = spec.split_once(':').map_or(spec.as_str(), |(n, _)| n);
        if engine.repository().state(name).is_none() {
            let served: Vec<String> = engine
                .repository()
                .entries(engine)
                .into_iter()
                .map(|e| e.name)
                .collect();
            return Err(slipway_registry::RegistryError::Invalid(format!(
                "--model-config {}: no model named `{}` is served here; the served models are {}",
                slipway_registry::printable(spec),
                slipway_registry::printable(name),
                served.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

/// A listener that could not be opened, with the reason and what to do.
fn cannot_listen(addr: &str, flag: &str, e: &std::io::Error) -> anyhow::Error {
    let kind = e.kind();
    let hint = if kind == std::io::ErrorKind::AddrInUse {
        format!(": another program listens there; choose another port with {flag}")
    } else if kind == std::io::ErrorKind::PermissionDenied {
        format!(": ports below 1024 need privileges; choose another with {flag}")
    } else {
        String::new()
    };
    anyhow::anyhow!("cannot listen on {addr} ({e}){hint}")
}

/// One repository event as a log line with its fields (JSON when stderr is not a terminal).
fn log_event(event: &Event) {
    match event {
        Event::Loaded {
            name,
            source,
            version,
            previous,
        } => tracing::info!(
            model = name.as_str(),
            source = source.as_str(),
            version = version.as_str(),
            previous = previous.as_deref(),
            "now serving {name}:{version}"
        ),
        Event::Failed {
            name,
            source,
            reason,
            serving,
        } => tracing::warn!(
            model = name.as_str(),
            source = source.as_str(),
            reason = reason.as_str(),
            serving = serving.as_deref(),
            "{source} does not load; {}",
            match serving {
                Some(v) => format!("still serving {name}:{v}"),
                None =>
                    format!("{name} is unavailable until its alias moves or it is loaded again"),
            }
        ),
    }
}

/// A future that resolves on ctrl-c or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a SIGTERM sent as soon as the server says it
/// is ready must drain it, not kill it (a test saw exactly that race).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = int => {},
                () = term => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
