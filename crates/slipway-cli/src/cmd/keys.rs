//! `slipway keys`: API keys for `slipway serve`, kept in the registry so every server that
//! shares it sees them. A token is printed once, at `create` or `rotate`; only its hash is kept.

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use slipway_registry::keys::{NewKey, parse_duration};
use slipway_registry::{KeyRecord, Role, printable};

use crate::cmd::registry::{RegistryPath, who};
use crate::output;

fn role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|e: slipway_registry::RegistryError| e.to_string())
}

fn duration(text: &str) -> Result<u64, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its token (once: only a hash is stored).
    Create {
        /// What the key is for, e.g. scoring-app (shown in listings and the audit log).
        #[arg(long)]
        name: String,
        /// infer (inference, metadata), monitor (statistics, /metrics), deploy (load, unload)
        /// or admin (everything).
        #[arg(long, value_parser = role)]
        role: Role,
        /// The models it may touch, comma-separated, `*` for any run of characters (default:
        /// every model), e.g. 'credit,fraud-*'.
        #[arg(long, value_name = "PATTERNS")]
        models: Option<String>,
        /// When it stops working, from now: 90d, 12h, 30m (default: never).
        #[arg(long, value_parser = duration, value_name = "DURATION")]
        expires: Option<u64>,
        /// Calls it may make, e.g. 200/s or 12000/min, with a one-second burst; over it, 429
        /// with Retry-After (gRPC RESOURCE_EXHAUSTED) (default: no limit of its own).
        #[arg(long, value_parser = rate)]
        rate: Option<f64>,
        #[command(flatten)]
        registry: RegistryPath,
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
    /// Every key: id, name, role, models, limits, and whether it works (never a secret).
    List {
        #[command(flatten)]
        registry: RegistryPath,
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
    /// Stop a key at once (servers drop it within their watch interval).
    Revoke {
        /// The key's id (the part after `sk_`, as `keys list` shows it).
        id: String,
        #[command(flatten)]
        registry: RegistryPath,
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
    /// Replace a key with a new one of the same name, role, models and limits.
    Rotate {
        /// The key's id (the part after `sk_`, as `keys list` shows it).
        id: String,
        /// How long the old key keeps working, so clients can switch: 24h, 30m, 0s for none.
        #[arg(long, default_value = "24h", value_parser = grace)]
        grace: u64,
        #[command(flatten)]
        registry: RegistryPath,
        /// Print the result as one JSON object, for scripts and CI pipelines.
        #[arg(long)]
        json: bool,
    },
}

fn rate(text: &str) -> Result<f64, String> {
    slipway_registry::keys::parse_rate(text).map_err(|e| e.to_string())
}

fn grace(text: &str) -> Result<u64, String> {
    if text.trim_end_matches(['s', 'm', 'h', 'd']) == "0" {
        return Ok(0);
    }
    duration(text)
}

fn key_json(k: &KeyRecord) -> serde_json::Value {
    let now = slipway_registry::keys::seconds_now();
    json!({
        "id": k.id,
        "name": k.name,
        "role": k.role,
        "models": k.models,
        "created_at": k.created_at,
        "created_by": k.created_by,
        "expires_at": k.expires_at.map(slipway_core::manifest::rfc3339),
        "revoked_at": k.revoked_at,
        "rate": k.rate,
        "live": k.live(now),
    })
}

fn print_token(k: &KeyRecord, token: &str, json: bool) {
    if json {
        let mut v = key_json(k);
        v["token"] = json!(token);
        output::print_json(&v);
        return;
    }
    println!("{token}");
    eprintln!(
        "key {} `{}` ({}{}): the token above is shown this once; keep it in a secret store. Clients send it as `Authorization: Bearer <token>`.",
        k.id,
        printable(&k.name),
        k.role,
        if k.models.is_empty() {
            ", every model".to_string()
        } else {
            format!(", models {}", k.models.join(","))
        }
    );
}

pub fn keys(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create {
            name,
            role,
            models,
            expires,
            rate,
            registry,
            json,
        } => {
            let patterns = models.as_deref().map(crate::cmd::list).unwrap_or_default();
            if models.is_some() && patterns.is_empty() {
                // An empty list would mean every model: say so rather than widen the key.
                return Err(slipway_registry::RegistryError::Invalid(
                    "--models names no model; leave it out for a key over every model".into(),
                )
                .into());
            }
            let mut registry = registry.open_or_create()?;
            let (k, token) = registry.create_key(&NewKey {
                name,
                role: Some(role),
                models: patterns,
                expires_in: expires,
                rate,
                rows_rate: None,
                by: who(),
            })?;
            print_token(&k, &token, json);
            Ok(())
        }
        KeysCommand::List { registry, json } => {
            let registry = registry.open()?;
            let keys = registry.meta().keys()?;
            if json {
                let list: Vec<_> = keys.iter().map(key_json).collect();
                output::print_json(&json!({ "keys": list }));
                return Ok(());
            }
            if keys.is_empty() {
                println!("no keys; create one with `slipway keys create --name NAME --role infer`");
                return Ok(());
            }
            let now = slipway_registry::keys::seconds_now();
            println!(
                "{:<12}  {:<20}  {:<7}  {:<20}  {:<20}  status",
                "id", "name", "role", "models", "expires"
            );
            for k in &keys {
                let status = match (&k.revoked_at, k.live(now)) {
                    (Some(at), _) => format!("revoked {at}"),
                    (None, false) => "expired".into(),
                    (None, true) => "live".into(),
                };
                println!(
                    "{:<12}  {:<20}  {:<7}  {:<20}  {:<20}  {status}",
                    k.id,
                    printable(&k.name),
                    k.role.as_str(),
                    if k.models.is_empty() {
                        "*".to_string()
                    } else {
                        k.models.join(",")
                    },
                    k.expires_at
                        .map_or("never".into(), slipway_core::manifest::rfc3339),
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { id, registry, json } => {
            let mut registry = registry.open()?;
            registry.revoke_key(&id, &who())?;
            if json {
                output::print_json(&json!({ "id": id, "revoked": true }));
            } else {
                println!(
                    "revoked key {}; servers drop it within their watch interval",
                    printable(&id)
                );
            }
            Ok(())
        }
        KeysCommand::Rotate {
            id,
            grace,
            registry,
            json,
        } => {
            let mut registry = registry.open()?;
            let (k, token) = registry.rotate_key(&id, grace, &who())?;
            print_token(&k, &token, json);
            if !json {
                eprintln!(
                    "the old key {} {}",
                    printable(&id),
                    if grace == 0 {
                        "is revoked".to_string()
                    } else {
                        format!("keeps working for {grace} s")
                    }
                );
            }
            Ok(())
        }
    }
}
