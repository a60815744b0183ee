//! API keys: what a key may do (a role over a set of models), how its token looks
//! (`sk_<id>_<secret>`: the id is public and names the key in logs and listings, the secret is
//! 256 random bits shown once), and how a presented token is checked against the stored hash.
//! Keys are registry records, so every server sharing a registry sees the same keys.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{RegistryError, Result};

/// Hex characters of a key's public id (48 random bits).
pub const ID_HEX: usize = 12;
/// Hex characters of a key's secret (256 random bits).
pub const SECRET_HEX: usize = 64;
/// What every token starts with, so it is recognisable in a leak scanner.
pub const TOKEN_PREFIX: &str = "sk_";

/// What a key may do. `admin` may do everything; the others one thing each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Inference, model metadata and readiness, for the models in its scope.
    Infer,
    /// Statistics and `/metrics`.
    Monitor,
    /// Loading and unloading models (and, later, rollouts) in its scope.
    Deploy,
    /// Everything, keys included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Infer, Role::Monitor, Role::Deploy, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Infer => "infer",
            Role::Monitor => "monitor",
            Role::Deploy => "deploy",
            Role::Admin => "admin",
        }
    }

    /// Whether a key of this role may act as `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

impl std::str::FromStr for Role {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                RegistryError::Invalid(format!(
                    "`{}` is not a role; the roles are infer, monitor, deploy and admin",
                    crate::printable(s)
                ))
            })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored key: everything but its secret, of which only the SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRecord {
    /// The public id (`sk_<id>_…`).
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Model name patterns (`credit`, `fraud-*`); empty: every model.
    pub models: Vec<String>,
    /// SHA-256 of the secret, hex.
    #[serde(skip)]
    pub secret_sha256: String,
    pub created_at: String,
    pub created_by: String,
    /// Seconds since the epoch after which the key no longer works.
    pub expires_at: Option<u64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// Requests a second the key may make (none: no limit of its own).
    pub rate: Option<f64>,
    /// Rows a second the key may send.
    pub rows_rate: Option<f64>,
}

impl KeyRecord {
    /// Whether the key's scope takes in `model`.
    pub fn covers(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| glob(p, model))
    }

    /// Whether it works at `now` (seconds since the epoch): not revoked, not expired.
    pub fn live(&self, now: u64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }

    /// Whether `secret` is this key's, compared in constant time.
    pub fn opens(&self, secret: &str) -> bool {
        self.digest().is_some_and(|d| opens(&d, secret))
    }

    /// The stored SHA-256 as bytes (`None` if the record's hex is damaged), for a caller that
    /// checks many calls against one key ([`opens`]).
    pub fn digest(&self) -> Option<[u8; 32]> {
        let hex = self.secret_sha256.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(out)
    }
}

/// Whether `secret` hashes to `digest`, compared in constant time.
pub fn opens(digest: &[u8; 32], secret: &str) -> bool {
    constant_time_eq(&Sha256::digest(secret.as_bytes()), digest)
}

/// A presented token split into its parts, the format checked: `sk_`, 12 lowercase hex, `_`,
/// 64 lowercase hex. `None` for anything else (never echoed back: it may be a secret).
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (hex(id, ID_HEX) && hex(secret, SECRET_HEX)).then_some((id, secret))
}

/// A new key's id, secret and token, from the operating system's random source.
pub fn new_token() -> Result<(String, String, String)> {
    let mut bytes = [0u8; ID_HEX / 2 + SECRET_HEX / 2];
    getrandom::fill(&mut bytes).map_err(|e| {
        RegistryError::Invalid(format!("the operating system gave no random bytes: {e}"))
    })?;
    let id = hex(&bytes[..ID_HEX / 2]);
    let secret = hex(&bytes[ID_HEX / 2..]);
    let token = format!("{TOKEN_PREFIX}{id}_{secret}");
    Ok((id, secret, token))
}

/// SHA-256 of a secret, hex, as stored.
pub fn secret_sha256(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal bytes, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name.ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Parses a duration such as `90d`, `12h`, `30m` or `45s` into seconds.
pub fn parse_duration(text: &str) -> Result<u64> {
    let bad = || {
        RegistryError::Invalid(format!(
            "`{}` is not a duration; write it as 90d, 12h, 30m or 45s",
            crate::printable(text)
        ))
    };
    let unit = text.chars().last().ok_or_else(bad)?;
    let n: u64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| bad())?;
    let scale = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).filter(|s| *s > 0).ok_or_else(bad)
}

/// Parses a rate such as `200/s`, `12000/min` or `50000/h` into a number a second.
pub fn parse_rate(text: &str) -> Result<f64> {
    let bad = || {
        RegistryError::Invalid(format!(
            "`{}` is not a rate; write it as 200/s, 12000/min or 50000/h",
            crate::printable(text)
        ))
    };
    let (n, per) = text.split_once('/').ok_or_else(bad)?;
    let n: f64 = n.trim().parse().map_err(|_| bad())?;
    let seconds = match per.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(bad()),
    };
    let rate = n / seconds;
    // At least one call an hour, at most a million a second.
    if (1.0 / 3600.0..=1e6).contains(&rate) {
        Ok(rate)
    } else {
        Err(bad())
    }
}

/// What a new key may do, and for how long.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub role: Option<Role>,
    /// Model name patterns; empty: every model.
    pub models: Vec<String>,
    /// Seconds from now until it expires.
    pub expires_in: Option<u64>,
    pub rate: Option<f64>,
    pub rows_rate: Option<f64>,
    pub by: String,
}

/// Seconds since the epoch, the clock key expiry is read against.
pub fn seconds_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl crate::Registry {
    /// Creates a key; returns its record and its token, which is shown once and stored nowhere.
    pub fn create_key(&mut self, new: &NewKey) -> Result<(KeyRecord, String)> {
        crate::check_name("key", &new.name)?;
        for p in &new.models {
            if p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.*".contains(c))
            {
                return Err(RegistryError::Invalid(format!(
                    "`{}` is not a model pattern: model names with `*` for any run of characters, e.g. credit or fraud-*",
                    crate::printable(p)
                )));
            }
        }
        let role = new.role.ok_or_else(|| {
            RegistryError::Invalid("a key needs a role: infer, monitor, deploy or admin".into())
        })?;
        let (id, secret, token) = new_token()?;
        let record = KeyRecord {
            id,
            name: new.name.clone(),
            role,
            models: new.models.clone(),
            secret_sha256: secret_sha256(&secret),
            created_at: crate::meta::now(),
            created_by: new.by.clone(),
            expires_at: new.expires_in.map(|s| seconds_now().saturating_add(s)),
            revoked_at: None,
            rate: new.rate,
            rows_rate: new.rows_rate,
        };
        self.meta.insert_key(&record)?;
        Ok((record, token))
    }

    /// Revokes a key at once.
    pub fn revoke_key(&mut self, id: &str, by: &str) -> Result<()> {
        self.meta.end_key(id, None, by, "keys.revoke")
    }

    /// Replaces a key with a new one of the same name, role, models and limits; the old one
    /// keeps working for `grace` seconds (0: revoked now), so clients can switch.
    pub fn rotate_key(&mut self, id: &str, grace: u64, by: &str) -> Result<(KeyRecord, String)> {
        let keys = self.meta.keys()?;
        let old = keys.iter().find(|k| k.id == id).ok_or_else(|| {
            RegistryError::NotFound(format!(
                "no key with id `{}`; `slipway keys list` shows them",
                crate::printable(id)
            ))
        })?;
        let now = seconds_now();
        if !old.live(now) {
            return Err(RegistryError::Conflict(format!(
                "key {id} `{}` no longer works (revoked or expired); create a new one",
                old.name
            )));
        }
        let (new, token) = self.create_key(&NewKey {
            name: old.name.clone(),
            role: Some(old.role),
            models: old.models.clone(),
            expires_in: old
                .expires_at
                .map(|t| t.saturating_sub(now))
                .filter(|s| *s > 0),
            rate: old.rate,
            rows_rate: old.rows_rate,
            by: by.to_string(),
        })?;
        if grace == 0 {
            self.meta.end_key(id, None, by, "keys.rotate")?;
        } else {
            self.meta
                .end_key(id, Some(now.saturating_add(grace)), by, "keys.rotate")?;
        }
        Ok((new, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_round_trip_and_open_only_their_key() {
        let (id, secret, token) = new_token().unwrap();
        assert_eq!(parse_token(&token), Some((id.as_str(), secret.as_str())));
        let key = KeyRecord {
            id,
            name: "app".into(),
            role: Role::Infer,
            models: vec!["credit".into(), "fraud-*".into()],
            secret_sha256: secret_sha256(&secret),
            created_at: String::new(),
            created_by: String::new(),
            expires_at: Some(100),
            revoked_at: None,
            rate: None,
            rows_rate: None,
        };
        assert!(key.opens(&secret));
        assert!(!key.opens(&"0".repeat(SECRET_HEX)));
        assert!(key.live(99) && !key.live(100));
        assert!(key.covers("credit") && key.covers("fraud-eu") && !key.covers("credit2"));
        for bad in [
            "",
            "sk_",
            "sk_abc_def",
            &token.to_uppercase(),
            &format!("{token}0"),
            &token[1..],
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn globs_durations_rates_and_roles() {
        assert!(glob("*", "anything") && glob("a*c", "abc") && glob("a*c", "ac"));
        assert!(glob("*-eu", "fraud-eu") && !glob("*-eu", "fraud-us"));
        assert!(glob("a*b*c", "axxbyyc") && !glob("a*b*c", "acb"));
        assert!(!glob("ab*ba", "aba"));
        assert_eq!(parse_duration("90d").unwrap(), 90 * 86_400);
        assert!(parse_duration("0d").is_err() && parse_duration("d").is_err());
        assert!(parse_duration("9999999999999999999d").is_err());
        assert_eq!(parse_rate("200/s").unwrap(), 200.0);
        assert_eq!(parse_rate("120/min").unwrap(), 2.0);
        assert!(
            parse_rate("0/s").is_err() && parse_rate("NaN/s").is_err() && parse_rate("5").is_err()
        );
        assert!(parse_rate("1e-300/s").is_err() && parse_rate("1e308/s").is_err());
        assert_eq!(parse_rate("1/h").unwrap(), 1.0 / 3600.0);
        assert!(Role::Admin.allows(Role::Deploy) && !Role::Deploy.allows(Role::Infer));
        assert_eq!("monitor".parse::<Role>().unwrap(), Role::Monitor);
        assert!("root".parse::<Role>().is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,120}") {
            let _ = parse_token(&s);
            let _ = parse_duration(&s);
            let _ = parse_rate(&s);
            let _ = glob(&s, "credit");
            let _ = glob("c*t", &s);
        }
    }
}
