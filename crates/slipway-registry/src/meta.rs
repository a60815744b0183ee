//! The metadata store: models, versions, aliases with their history, and the audit log.
//! SQLite now (WAL, foreign keys, versioned migrations); PostgreSQL can implement the same trait.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};
use crate::keys::KeyRecord;

/// The schema this version of Slipway writes.
pub const SCHEMA_VERSION: i64 = 3;

/// One file of a package, stored as a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// A registered, immutable model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub model: String,
    pub version: u32,
    /// The package digest: SHA-256 of its canonical content (see `package_digest`).
    pub digest: String,
    /// `slipway.json`, as registered.
    pub manifest: serde_json::Value,
    pub files: Vec<FileEntry>,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub created_at: String,
    pub created_by: String,
}

/// What a registration adds.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub model: String,
    pub digest: String,
    pub manifest: serde_json::Value,
    pub files: Vec<FileEntry>,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub by: String,
    /// Point this alias at the new version, in the same transaction.
    pub alias: Option<String>,
    /// The audit action: `register` or `import`.
    pub action: String,
}

/// One move of an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasMove {
    pub alias: String,
    /// `register`, `import`, `promote` or `rollback`.
    pub action: String,
    pub from: Option<u32>,
    pub to: Option<u32>,
    pub at: String,
    pub by: String,
    pub reason: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub by: String,
    pub action: String,
    pub model: Option<String>,
    pub version: Option<u32>,
    pub detail: String,
}

/// A model with its versions and aliases, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelSummary {
    pub name: String,
    pub versions: u32,
    pub latest: u32,
    pub aliases: BTreeMap<String, u32>,
    pub created_at: String,
}

/// Models, versions, aliases and audit, behind one trait so that other databases can plug in.
pub trait MetadataStore: Send {
    /// Adds a version (creating the model on first use), numbered one above the highest ever
    /// given, with its optional alias move and its audit line, atomically.
    fn insert_version(&mut self, new: NewVersion) -> Result<VersionRecord>;
    /// Every model, by name.
    fn list_models(&self) -> Result<Vec<ModelSummary>>;
    /// The versions of a model, oldest first.
    fn versions(&self, model: &str) -> Result<Vec<VersionRecord>>;
    /// One version.
    fn version(&self, model: &str, version: u32) -> Result<VersionRecord>;
    /// Where each alias of a model points.
    fn aliases(&self, model: &str) -> Result<BTreeMap<String, u32>>;
    /// Points `alias` at `to` (or removes it with `None`), records the move and an audit line,
    /// atomically; returns where it pointed before.
    fn move_alias(
        &mut self,
        model: &str,
        alias: &str,
        to: Option<u32>,
        by: &str,
        reason: &str,
        action: &str,
    ) -> Result<Option<u32>>;
    /// Every move of the model's aliases, oldest first.
    fn alias_history(&self, model: &str) -> Result<Vec<AliasMove>>;
    /// Deletes a version that no alias points at, with an audit line.
    fn delete_version(&mut self, model: &str, version: u32, by: &str) -> Result<()>;
    /// The audit log, newest last; at most `limit` lines.
    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>>;
    /// Checks the database's own integrity; returns the problems found.
    fn integrity_check(&self) -> Result<Vec<String>>;
    /// The gates stored for an alias (as written, e.g. `roc_auc>=0.75`).
    fn gates(&self, model: &str, alias: &str) -> Result<Vec<String>>;
    /// Replaces the gates stored for an alias, with an audit line.
    fn set_gates(&mut self, model: &str, alias: &str, gates: &[String], by: &str) -> Result<()>;
    /// Appends one audit line for an action taken elsewhere (a server's load or unload).
    fn append_audit(
        &mut self,
        by: &str,
        action: &str,
        model: Option<&str>,
        detail: &str,
    ) -> Result<()>;
    /// Stores a new API key (its secret's hash only), with an audit line.
    fn insert_key(&mut self, key: &KeyRecord) -> Result<()>;
    /// Every API key, revoked and expired ones included, oldest first.
    fn keys(&self) -> Result<Vec<KeyRecord>>;
    /// Revokes a key now, or (with `at`, seconds since the epoch) makes it expire then; with an
    /// audit line saying `action` (`keys.revoke`, `keys.rotate`).
    fn end_key(&mut self, id: &str, at: Option<u64>, by: &str, action: &str) -> Result<()>;
}

/// The SQLite metadata store.
pub struct SqliteStore {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        next_version INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE versions (
        model_id INTEGER NOT NULL REFERENCES models(id),
        version INTEGER NOT NULL,
        digest TEXT NOT NULL,
        manifest TEXT NOT NULL,
        files TEXT NOT NULL,
        description TEXT NOT NULL,
        tags TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (model_id, version)
    );
    CREATE TABLE aliases (
        model_id INTEGER NOT NULL,
        alias TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (model_id, alias),
        FOREIGN KEY (model_id, version) REFERENCES versions(model_id, version)
    );
    CREATE TABLE alias_history (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models(id),
        alias TEXT NOT NULL,
        from_version INTEGER,
        to_version INTEGER,
        action TEXT NOT NULL,
        at TEXT NOT NULL,
        by TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        by TEXT NOT NULL,
        action TEXT NOT NULL,
        model TEXT,
        version INTEGER,
        detail TEXT NOT NULL
    );",
    // 2: promotion gates stored per alias.
    "CREATE TABLE alias_gates (
        model_id INTEGER NOT NULL REFERENCES models(id),
        alias TEXT NOT NULL,
        gate TEXT NOT NULL,
        PRIMARY KEY (model_id, alias, gate)
    );",
    // 3: API keys; only the SHA-256 of each secret is kept.
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('infer', 'monitor', 'deploy', 'admin')),
        models TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        expires_at INTEGER,
        revoked_at TEXT,
        rate REAL,
        rows_rate REAL
    );",
];

/// A database error, worded for people: a read-only registry says so. Write methods call it
/// from a closure over `&self.path`, which borrows only that field beside `self.conn`.
pub(crate) fn db_error(path: &Path, e: rusqlite::Error) -> RegistryError {
    let read_only = matches!(&e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ReadOnly || f.code == rusqlite::ErrorCode::CannotOpen);
    let message = if read_only {
        format!(
            "{e}: the registry cannot be written; check its permissions or use another --registry"
        )
    } else {
        e.to_string()
    };
    RegistryError::Database {
        path: path.to_path_buf(),
        message,
    }
}

pub(crate) fn now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let base = slipway_core::manifest::rfc3339(now.as_secs());
    format!("{}.{:03}Z", base.trim_end_matches('Z'), now.subsec_millis())
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = |e: rusqlite::Error| db_error(path, e);
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if found > SCHEMA_VERSION {
            return Err(RegistryError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        if found < SCHEMA_VERSION {
            // WAL is persistent: set it once, when creating or migrating.
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(db)?;
            let _ = mode;
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
        };
        // Only a registry that needs it takes the write lock to migrate: readers never wait on
        // writers here.
        if found < SCHEMA_VERSION {
            store.migrate()?;
        }
        Ok(store)
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> RegistryError + '_ {
        move |e| db_error(&self.path, e)
    }

    fn migrate(&mut self) -> Result<()> {
        let db = |e: rusqlite::Error| db_error(&self.path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let found: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.execute_batch(sql).map_err(db)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn model_id(conn: &Connection, model: &str) -> rusqlite::Result<Option<i64>> {
        conn.query_row("SELECT id FROM models WHERE name = ?1", [model], |r| {
            r.get(0)
        })
        .optional()
    }

    fn require_model(&self, model: &str) -> Result<i64> {
        Self::model_id(&self.conn, model)
            .map_err(self.db())?
            .ok_or_else(|| {
                RegistryError::NotFound(format!(
                    "no model named `{model}`; `slipway models list` shows them"
                ))
            })
    }
}

fn row_to_version(model: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    let manifest: String = r.get(2)?;
    let files: String = r.get(3)?;
    let tags: String = r.get(5)?;
    let bad = |e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(VersionRecord {
        model: model.to_string(),
        version: r.get(0)?,
        digest: r.get(1)?,
        manifest: serde_json::from_str(&manifest).map_err(bad)?,
        files: serde_json::from_str(&files).map_err(bad)?,
        description: r.get(4)?,
        tags: serde_json::from_str(&tags).map_err(bad)?,
        created_at: r.get(6)?,
        created_by: r.get(7)?,
    })
}

const VERSION_COLUMNS: &str =
    "version, digest, manifest, files, description, tags, created_at, created_by";

impl MetadataStore for SqliteStore {
    fn insert_version(&mut self, new: NewVersion) -> Result<VersionRecord> {
        let db = |e: rusqlite::Error| db_error(&self.path, e);
        let at = now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let id = match Self::model_id(&tx, &new.model).map_err(db)? {
            Some(id) => id,
            None => {
                tx.execute(
                    "INSERT INTO models (name, created_at, created_by) VALUES (?1, ?2, ?3)",
                    params![new.model, at, new.by],
                )
                .map_err(db)?;
                tx.last_insert_rowid()
            }
        };
        let version: u32 = tx
            .query_row("SELECT next_version FROM models WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(db)?;
        tx.execute(
            "UPDATE models SET next_version = next_version + 1 WHERE id = ?1",
            [id],
        )
        .map_err(db)?;
        let json = |v: &dyn erased::Json| v.to_json();
        tx.execute(
            "INSERT INTO versions (model_id, version, digest, manifest, files, description, tags, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![id, version, new.digest, json(&new.manifest), json(&new.files), new.description, json(&new.tags), at, new.by],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO audit (at, by, action, model, version, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![at, new.by, new.action, new.model, version, match &new.alias {
                    Some(a) => format!("digest {}; @{a} → {version}", new.digest),
                    None => format!("digest {}", new.digest),
                }],
        )
        .map_err(db)?;
        if let Some(alias) = &new.alias {
            let from: Option<u32> = tx
                .query_row(
                    "SELECT version FROM aliases WHERE model_id = ?1 AND alias = ?2",
                    params![id, alias],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            tx.execute(
                "INSERT INTO aliases (model_id, alias, version) VALUES (?1, ?2, ?3)
                 ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version",
                params![id, alias, version],
            )
            .map_err(db)?;
            tx.execute(
                "INSERT INTO alias_history (model_id, alias, from_version, to_version, action, at, by, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, alias, from, version, new.action, at, new.by, format!("{} with --alias", new.action)],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        self.version(&new.model, version)
    }

    fn list_models(&self) -> Result<Vec<ModelSummary>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.id, m.name, m.created_at, COUNT(v.version), COALESCE(MAX(v.version), 0)
                 FROM models m LEFT JOIN versions v ON v.model_id = m.id GROUP BY m.id ORDER BY m.name",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, u32>(4)?,
                ))
            })
            .map_err(self.db())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db())?;
        let mut aliases: BTreeMap<i64, BTreeMap<String, u32>> = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT model_id, alias, version FROM aliases")
            .map_err(self.db())?;
        for row in stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })
            .map_err(self.db())?
        {
            let (id, alias, version) = row.map_err(self.db())?;
            aliases.entry(id).or_default().insert(alias, version);
        }
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at, versions, latest)| ModelSummary {
                name,
                versions,
                latest,
                aliases: aliases.remove(&id).unwrap_or_default(),
                created_at,
            })
            .collect())
    }

    fn versions(&self, model: &str) -> Result<Vec<VersionRecord>> {
        let id = self.require_model(model)?;
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM versions WHERE model_id = ?1 ORDER BY version"
            ))
            .map_err(self.db())?;
        let rows = stmt
            .query_map([id], |r| row_to_version(model, r))
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db())
    }

    fn version(&self, model: &str, version: u32) -> Result<VersionRecord> {
        let id = self.require_model(model)?;
        self.conn
            .query_row(
                &format!("SELECT {VERSION_COLUMNS} FROM versions WHERE model_id = ?1 AND version = ?2"),
                params![id, version],
                |r| row_to_version(model, r),
            )
            .optional()
            .map_err(self.db())?
            .ok_or_else(|| RegistryError::NotFound(format!("model `{model}` has no version {version}; `slipway models show {model}` lists them")))
    }

    fn aliases(&self, model: &str) -> Result<BTreeMap<String, u32>> {
        let id = self.require_model(model)?;
        let mut stmt = self
            .conn
            .prepare("SELECT alias, version FROM aliases WHERE model_id = ?1")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<BTreeMap<_, _>>>()
            .map_err(self.db())
    }

    fn move_alias(
        &mut self,
        model: &str,
        alias: &str,
        to: Option<u32>,
        by: &str,
        reason: &str,
        action: &str,
    ) -> Result<Option<u32>> {
        let id = self.require_model(model)?;
        let db = |e: rusqlite::Error| db_error(&self.path, e);
        let at = now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let from: Option<u32> = tx
            .query_row(
                "SELECT version FROM aliases WHERE model_id = ?1 AND alias = ?2",
                params![id, alias],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        match to {
            Some(v) => {
                let exists: bool = tx
                    .query_row(
                        "SELECT COUNT(*) FROM versions WHERE model_id = ?1 AND version = ?2",
                        params![id, v],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(db)?
                    > 0;
                if !exists {
                    return Err(RegistryError::NotFound(format!(
                        "model `{model}` has no version {v}"
                    )));
                }
                tx.execute(
                    "INSERT INTO aliases (model_id, alias, version) VALUES (?1, ?2, ?3)
                     ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version",
                    params![id, alias, v],
                )
                .map_err(db)?;
            }
            None => {
                tx.execute(
                    "DELETE FROM aliases WHERE model_id = ?1 AND alias = ?2",
                    params![id, alias],
                )
                .map_err(db)?;
            }
        }
        tx.execute(
            "INSERT INTO alias_history (model_id, alias, from_version, to_version, action, at, by, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![id, alias, from, to, action, at, by, reason],
        )
        .map_err(db)?;
        let detail = format!(
            "{alias}: {} → {}{}",
            from.map_or("none".into(), |v| v.to_string()),
            to.map_or("none".into(), |v| v.to_string()),
            if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            }
        );
        tx.execute(
            "INSERT INTO audit (at, by, action, model, version, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![at, by, action, model, to, detail],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(from)
    }

    fn alias_history(&self, model: &str) -> Result<Vec<AliasMove>> {
        let id = self.require_model(model)?;
        let mut stmt = self
            .conn
            .prepare("SELECT alias, action, from_version, to_version, at, by, reason FROM alias_history WHERE model_id = ?1 ORDER BY id")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(AliasMove {
                    alias: r.get(0)?,
                    action: r.get(1)?,
                    from: r.get(2)?,
                    to: r.get(3)?,
                    at: r.get(4)?,
                    by: r.get(5)?,
                    reason: r.get(6)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db())
    }

    fn delete_version(&mut self, model: &str, version: u32, by: &str) -> Result<()> {
        let id = self.require_model(model)?;
        self.version(model, version)?;
        let pointing: Vec<String> = self
            .aliases(model)?
            .into_iter()
            .filter(|(_, v)| *v == version)
            .map(|(a, _)| a)
            .collect();
        if !pointing.is_empty() {
            return Err(RegistryError::Conflict(format!(
                "{model}:{version} is what {} point{} at; move {} first (slipway promote / rollback)",
                pointing
                    .iter()
                    .map(|a| format!("@{a}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if pointing.len() == 1 { "s" } else { "" },
                if pointing.len() == 1 { "it" } else { "them" }
            )));
        }
        let db = |e: rusqlite::Error| db_error(&self.path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute(
            "DELETE FROM versions WHERE model_id = ?1 AND version = ?2",
            params![id, version],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO audit (at, by, action, model, version, detail) VALUES (?1, ?2, 'delete', ?3, ?4, '')",
            params![now(), by, model, version],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, at, by, action, model, version, detail FROM (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) ORDER BY id")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    by: r.get(2)?,
                    action: r.get(3)?,
                    model: r.get(4)?,
                    version: r.get(5)?,
                    detail: r.get(6)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db())
    }

    fn gates(&self, model: &str, alias: &str) -> Result<Vec<String>> {
        let id = self.require_model(model)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT gate FROM alias_gates WHERE model_id = ?1 AND alias = ?2 ORDER BY gate",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![id, alias], |r| r.get::<_, String>(0))
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db())
    }

    fn insert_key(&mut self, key: &KeyRecord) -> Result<()> {
        crate::meta_keys::insert_key(self, key)
    }

    fn append_audit(
        &mut self,
        by: &str,
        action: &str,
        model: Option<&str>,
        detail: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO audit (at, by, action, model, version, detail) VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
                params![now(), by, action, model, detail],
            )
            .map(drop)
            .map_err(self.db())
    }

    fn keys(&self) -> Result<Vec<KeyRecord>> {
        crate::meta_keys::keys(self)
    }

    fn end_key(&mut self, id: &str, at: Option<u64>, by: &str, action: &str) -> Result<()> {
        crate::meta_keys::end_key(self, id, at, by, action)
    }

    fn set_gates(&mut self, model: &str, alias: &str, gates: &[String], by: &str) -> Result<()> {
        let id = self.require_model(model)?;
        let db = |e: rusqlite::Error| db_error(&self.path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute(
            "DELETE FROM alias_gates WHERE model_id = ?1 AND alias = ?2",
            params![id, alias],
        )
        .map_err(db)?;
        for g in gates {
            tx.execute(
                "INSERT OR IGNORE INTO alias_gates (model_id, alias, gate) VALUES (?1, ?2, ?3)",
                params![id, alias, g],
            )
            .map_err(db)?;
        }
        tx.execute(
            "INSERT INTO audit (at, by, action, model, version, detail) VALUES (?1, ?2, 'gates', ?3, NULL, ?4)",
            params![now(), by, model, format!("@{alias}: {}", if gates.is_empty() { "none".into() } else { gates.join(", ") })],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn integrity_check(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.db())?;
        let mut problems: Vec<String> = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db())?
            .into_iter()
            .filter(|r| r != "ok")
            .collect();
        let mut stmt = self
            .conn
            .prepare("PRAGMA foreign_key_check")
            .map_err(self.db())?;
        let fk = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.db())?;
        for table in fk {
            problems.push(format!(
                "a row of `{}` points at a missing row",
                table.map_err(self.db())?
            ));
        }
        Ok(problems)
    }
}

mod erased {
    /// Serialises any value to JSON text (the registry's own types never fail).
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "null".into())
        }
    }
}
