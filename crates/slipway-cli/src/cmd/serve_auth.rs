//! Whether `slipway serve` checks API keys, and keeping its keys fresh. Safe defaults that
//! break nobody: keys are checked as soon as the registry holds one (or with `--auth
//! required`); a server on a loopback address with no keys works as before; a server that
//! listens beyond loopback with no keys refuses to start unless `--auth none` says so.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use slipway_registry::{KeyRecord, Registry, RegistryError};
use slipway_server::auth::Auth;

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Keys checked when the registry holds any.
    #[default]
    Auto,
    /// Keys checked, even with none yet (every call but health is refused until one exists).
    Required,
    /// No checks, even beyond loopback (warned about at start).
    None,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<AuthMode, String> {
        match s {
            "auto" => Ok(AuthMode::Auto),
            "required" => Ok(AuthMode::Required),
            "none" => Ok(AuthMode::None),
            other => Err(format!(
                "`{other}` is not an auth mode: auto (keys when the registry has any), required or none"
            )),
        }
    }
}

/// Whether every address `addr` names is a loopback one (an address that does not resolve
/// counts as not loopback).
pub fn loopback(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    match addr.to_socket_addrs() {
        Ok(list) => {
            let all: Vec<_> = list.collect();
            !all.is_empty() && all.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// The registry's keys, or none when there is no registry.
fn read_keys(registry: &std::path::Path) -> Result<Vec<KeyRecord>> {
    match Registry::open_existing(registry) {
        Ok(r) => Ok(r.meta().keys()?),
        Err(RegistryError::NotFound(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Decides the server's key checks from `mode`, the registry's keys and where it listens.
pub fn decide(mode: AuthMode, registry: &std::path::Path, listens: &[&str]) -> Result<Arc<Auth>> {
    let keys = match mode {
        AuthMode::None => Vec::new(),
        AuthMode::Auto | AuthMode::Required => read_keys(registry)?,
    };
    let open = listens
        .iter()
        .filter(|a| !loopback(a))
        .copied()
        .collect::<Vec<_>>();
    match mode {
        AuthMode::None => {
            if !open.is_empty() {
                eprintln!(
                    "warning: --auth none: anyone who can reach {} may run, inspect and unload every model",
                    open.join(" and ")
                );
            }
            Ok(Arc::new(Auth::off()))
        }
        AuthMode::Auto if keys.is_empty() => {
            if !open.is_empty() {
                return Err(RegistryError::Invalid(format!(
                    "{} is reachable beyond this machine and the registry {} holds no API key: create one (slipway keys create --name NAME --role infer --registry {}) or, to serve without keys, pass --auth none",
                    open.join(" and "),
                    registry.display(),
                    registry.display()
                ))
                .into());
            }
            // On loopback: open until a key is created, then checked, without a restart.
            Ok(Arc::new(Auth::auto(Vec::new())))
        }
        AuthMode::Auto | AuthMode::Required => {
            eprintln!(
                "API keys required ({} in the registry); health stays open",
                keys.len()
            );
            Ok(Arc::new(Auth::on(keys)))
        }
    }
}

/// Reads the registry's keys every `every` on a thread of its own, so a new, revoked or
/// rotated key takes effect without a restart. A failed read keeps the keys in hand and is
/// logged.
pub fn follow(auth: Arc<Auth>, registry: std::path::PathBuf, every: Duration) {
    if !auth.follows_keys() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("slipway-keys".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                // A registry that has gone missing is an error here, not "no keys": the keys
                // in hand stay.
                let read = Registry::open_existing(&registry)
                    .and_then(|r| r.meta().keys())
                    .map_err(anyhow::Error::from);
                match read {
                    Ok(keys) => auth.set_keys(keys),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading API keys; keeping the ones in hand")
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the key refresher; keys are fixed at start");
    }
}
