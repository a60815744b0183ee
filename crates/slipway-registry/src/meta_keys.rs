//! API keys in the SQLite store: the `api_keys` table (migration 3) and its audit lines. Key
//! ids and names are in the audit; secrets never are, and only their hash is stored.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::error::{RegistryError, Result};
use crate::keys::{KeyRecord, Role};
use crate::meta::{SqliteStore, db_error, now};

pub(crate) fn insert_key(store: &mut SqliteStore, key: &KeyRecord) -> Result<()> {
    let db = |e: rusqlite::Error| db_error(&store.path, e);
    let models = serde_json::to_string(&key.models).unwrap_or_else(|_| "[]".into());
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    tx.execute(
        "INSERT INTO api_keys (id, name, role, models, secret_sha256, created_at, created_by, expires_at, revoked_at, rate, rows_rate)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10)",
        params![
            key.id,
            key.name,
            key.role.as_str(),
            models,
            key.secret_sha256,
            key.created_at,
            key.created_by,
            key.expires_at.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            key.rate,
            key.rows_rate
        ],
    )
    .map_err(db)?;
    tx.execute(
        "INSERT INTO audit (at, by, action, model, version, detail) VALUES (?1, ?2, 'keys.create', NULL, NULL, ?3)",
        params![
            key.created_at,
            key.created_by,
            format!(
                "key {} `{}`: role {}, models {}",
                key.id,
                key.name,
                key.role,
                if key.models.is_empty() { "*".to_string() } else { key.models.join(",") }
            )
        ],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}

pub(crate) fn keys(store: &SqliteStore) -> Result<Vec<KeyRecord>> {
    let db = |e: rusqlite::Error| db_error(&store.path, e);
    let mut stmt = store
        .conn
        .prepare(
            "SELECT id, name, role, models, secret_sha256, created_at, created_by, expires_at, revoked_at, rate, rows_rate
             FROM api_keys ORDER BY created_at, id",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<f64>>(9)?,
                r.get::<_, Option<f64>>(10)?,
            ))
        })
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    rows.into_iter()
        .map(
            |(
                id,
                name,
                role,
                models,
                secret_sha256,
                created_at,
                created_by,
                expires,
                revoked_at,
                rate,
                rows_rate,
            )| {
                let corrupt = |what: &str| {
                    RegistryError::Corrupt(format!(
                        "{}: key {id} has an unreadable {what}",
                        store.path.display()
                    ))
                };
                Ok(KeyRecord {
                    role: role.parse::<Role>().map_err(|_| corrupt("role"))?,
                    models: serde_json::from_str(&models).map_err(|_| corrupt("model list"))?,
                    id,
                    name,
                    secret_sha256,
                    created_at,
                    created_by,
                    expires_at: expires.map(|t| u64::try_from(t).unwrap_or(0)),
                    revoked_at,
                    rate,
                    rows_rate,
                })
            },
        )
        .collect()
}

pub(crate) fn end_key(
    store: &mut SqliteStore,
    id: &str,
    at: Option<u64>,
    by: &str,
    action: &str,
) -> Result<()> {
    let db = |e: rusqlite::Error| db_error(&store.path, e);
    let when = now();
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let found: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT name, revoked_at FROM api_keys WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    let Some((name, revoked)) = found else {
        return Err(RegistryError::NotFound(format!(
            "no key with id `{}`; `slipway keys list` shows them",
            crate::printable(id)
        )));
    };
    if revoked.is_some() {
        return Err(RegistryError::Conflict(format!(
            "key {id} `{name}` was revoked already"
        )));
    }
    let detail = match at {
        None => {
            tx.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1",
                params![id, when],
            )
            .map_err(db)?;
            format!("key {id} `{name}` revoked")
        }
        Some(t) => {
            tx.execute(
                "UPDATE api_keys SET expires_at = MIN(COALESCE(expires_at, ?2), ?2) WHERE id = ?1",
                params![id, i64::try_from(t).unwrap_or(i64::MAX)],
            )
            .map_err(db)?;
            format!(
                "key {id} `{name}` expires at {}",
                slipway_core::manifest::rfc3339(t)
            )
        }
    };
    tx.execute(
        "INSERT INTO audit (at, by, action, model, version, detail) VALUES (?1, ?2, ?3, NULL, NULL, ?4)",
        params![when, by, action, detail],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}
