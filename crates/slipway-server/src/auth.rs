//! Who may call what. With keys on, every REST route and gRPC call but health needs an API key
//! (`Authorization: Bearer sk_…`, the same in gRPC metadata) whose role allows it and whose
//! scope takes in the model it names. A model outside a key's scope is answered as an unknown
//! model is, so a key learns nothing about models it may not touch. The keys come from the
//! registry; whoever runs the server refreshes them ([`Auth::set_keys`]).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use slipway_registry::keys::parse_token;
use slipway_registry::{KeyRecord, Role};

use crate::ApiError;
use crate::error::clip;

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// Nothing: health, for load balancers and Kubernetes probes.
    Open,
    /// Any working key (server metadata, the model list, an unknown route).
    Key,
    /// A key of this role (`/metrics`, all models' statistics, the repository index).
    Role(Role),
    /// A key of this role whose scope takes in this model.
    Model(Role, &'a str),
}

/// The key a call was made with.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key: Arc<KeyRecord>,
}

impl Principal {
    /// Whether the key may see `model` at all.
    pub fn covers(&self, model: &str) -> bool {
        self.key.covers(model)
    }
}

/// A key and its secret's SHA-256, decoded once.
type Keyed = (Arc<KeyRecord>, [u8; 32]);

/// The server's keys and whether it checks them.
#[derive(Default)]
pub struct Auth {
    /// Whether calls are checked; an `auto` server turns it on when its first key appears,
    /// and never off again.
    on: std::sync::atomic::AtomicBool,
    /// Turn on when keys appear.
    auto: bool,
    keys: ArcSwap<HashMap<String, Keyed>>,
    /// Each rate-limited key's bucket, by id; kept across key refreshes.
    buckets: std::sync::Mutex<HashMap<String, Bucket>>,
}

/// A token bucket: `rate` tokens a second, at most one second's worth in hand.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(rate: f64, now: std::time::Instant) -> Bucket {
        Bucket {
            tokens: rate.max(1.0),
            at: now,
        }
    }

    /// Takes one token at `now`, or says in how many seconds one will be there.
    pub fn take(&mut self, rate: f64, now: std::time::Instant) -> Result<(), f64> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / rate)
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("on", &self.enabled())
            .field("keys", &self.keys.load().len())
            .finish()
    }
}

const NO_KEY: &str = "this server needs an API key: send `Authorization: Bearer sk_…` (`slipway keys create` makes one)";
const NOT_A_KEY: &str = "the API key is not one this server knows";

impl Auth {
    /// No checks: every call is allowed (a loopback server without keys, or `--auth none`).
    pub fn off() -> Auth {
        Auth::default()
    }

    /// Checks on, with these keys.
    pub fn on(keys: Vec<KeyRecord>) -> Auth {
        let auth = Auth {
            on: std::sync::atomic::AtomicBool::new(true),
            ..Auth::default()
        };
        auth.set_keys(keys);
        auth
    }

    /// Checks off until the first key appears through [`Auth::set_keys`], then on for good.
    pub fn auto(keys: Vec<KeyRecord>) -> Auth {
        let auth = Auth {
            auto: true,
            ..Auth::default()
        };
        auth.set_keys(keys);
        auth
    }

    /// Whether keys set later may turn the checks on.
    pub fn follows_keys(&self) -> bool {
        self.auto || self.enabled()
    }

    /// Whether calls are checked.
    pub fn enabled(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Replaces the keys (a new, revoked or rotated key takes effect for the next call).
    pub fn set_keys(&self, keys: Vec<KeyRecord>) {
        if self.auto && !keys.is_empty() {
            self.on.store(true, std::sync::atomic::Ordering::Release);
        }
        // A record whose stored hash is damaged opens nothing.
        let map = keys
            .into_iter()
            .filter_map(|k| {
                let digest = k.digest()?;
                Some((k.id.clone(), (Arc::new(k), digest)))
            })
            .collect();
        self.keys.store(Arc::new(map));
    }

    /// Checks a call: `authorization` is the header's (or metadata's) value.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        need: Need<'_>,
    ) -> Result<Option<Principal>, ApiError> {
        if !self.enabled() || need == Need::Open {
            return Ok(None);
        }
        let header = authorization.ok_or_else(|| ApiError::Unauthenticated(NO_KEY.into()))?;
        let token = bearer(header).ok_or_else(|| {
            ApiError::Unauthenticated("the Authorization header is not `Bearer <API key>`".into())
        })?;
        let (id, secret) =
            parse_token(token).ok_or_else(|| ApiError::Unauthenticated(NOT_A_KEY.into()))?;
        let key = self
            .keys
            .load()
            .get(id)
            .filter(|(_, digest)| slipway_registry::keys::opens(digest, secret))
            .map(|(k, _)| Arc::clone(k))
            .ok_or_else(|| ApiError::Unauthenticated(NOT_A_KEY.into()))?;
        if key.revoked_at.is_some() {
            return Err(ApiError::Unauthenticated(format!(
                "the API key {id} was revoked"
            )));
        }
        if !key.live(slipway_registry::keys::seconds_now()) {
            return Err(ApiError::Unauthenticated(format!(
                "the API key {id} expired"
            )));
        }
        let role = match need {
            Need::Open | Need::Key => None,
            Need::Role(r) => Some(r),
            Need::Model(r, model) => {
                if !key.covers(model) {
                    // As for a model that is not there: the key learns nothing of it.
                    return Err(ApiError::NotFound(format!(
                        "model `{}` is not served here",
                        clip(model, 256)
                    )));
                }
                Some(r)
            }
        };
        if let Some(r) = role
            && !key.role.allows(r)
        {
            return Err(ApiError::Forbidden(format!(
                "the API key {id} ({}) may not do this: it needs the {r} role",
                key.role
            )));
        }
        if let Some(rate) = key.rate.filter(|r| r.is_finite() && *r > 0.0) {
            let now = std::time::Instant::now();
            let mut buckets = self
                .buckets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let bucket = buckets
                .entry(key.id.clone())
                .or_insert_with(|| Bucket::full(rate, now));
            if let Err(wait) = bucket.take(rate, now) {
                return Err(ApiError::RateLimited(
                    format!("the API key {id} is over its rate of {rate}/s; retry shortly"),
                    wait.ceil().clamp(1.0, 3600.0) as u64,
                ));
            }
        }
        Ok(Some(Principal { key }))
    }
}

/// The token of `Bearer <token>` (the scheme in any case, one or more spaces).
fn bearer(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
        .filter(|t| !t.is_empty())
}

/// What a REST call needs, from its path's raw segments, matched as the router matches them
/// (undecoded); the model name it returns is still encoded ([`decode_name`] decodes it, as the
/// router does before it hands the name to a handler).
pub fn need_for<'a>(segments: &[&'a str]) -> Need<'a> {
    match segments {
        [""] | ["v2", "health", "live" | "ready"] => Need::Open,
        ["metrics"] | ["v2", "models", "stats"] => Need::Role(Role::Monitor),
        ["v2", "repository", "index"] => Need::Role(Role::Deploy),
        ["v2", "repository", "models", m, "load" | "unload"] => Need::Model(Role::Deploy, m),
        ["v2", "models", m, "stats"] | ["v2", "models", m, "versions", _, "stats"] => {
            Need::Model(Role::Monitor, m)
        }
        ["v2", "models", m]
        | ["v2", "models", m, "ready" | "infer"]
        | ["v2", "models", m, "versions", _]
        | ["v2", "models", m, "versions", _, "ready" | "infer"] => Need::Model(Role::Infer, m),
        ["v1", "models", m] => Need::Model(Role::Infer, m.strip_suffix(":predict").unwrap_or(m)),
        _ => Need::Key,
    }
}

/// A REST path's raw segments.
pub fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

/// A model name from a path, percent-decoded as the router decodes it (lossily: a name that is
/// not UTF-8 is no model's); borrowed when it has no `%`.
pub fn decode_name(m: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(m).decode_utf8_lossy()
}

/// What the REST call to `path` needs, its model name decoded, handed to `f`.
pub fn with_need<T>(path: &str, f: impl FnOnce(Need<'_>) -> T) -> T {
    let raw = segments(path);
    match need_for(&raw) {
        Need::Model(role, m) => f(Need::Model(role, &decode_name(m))),
        other @ (Need::Open | Need::Key | Need::Role(_)) => f(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn need(path: &str) -> String {
        with_need(path, |n| format!("{n:?}"))
    }

    #[test]
    fn routes_need_what_the_table_says() {
        assert_eq!(need("/v2/health/ready"), format!("{:?}", Need::Open));
        assert_eq!(need("/"), format!("{:?}", Need::Open));
        assert_eq!(need("/metrics"), format!("{:?}", Need::Role(Role::Monitor)));
        assert_eq!(need("/v2/models"), format!("{:?}", Need::Key));
        assert_eq!(need("/v2"), format!("{:?}", Need::Key));
        assert_eq!(
            need("/v2/models/credit/versions/3/infer"),
            format!("{:?}", Need::Model(Role::Infer, "credit"))
        );
        assert_eq!(
            need("/v1/models/credit:predict"),
            format!("{:?}", Need::Model(Role::Infer, "credit"))
        );
        assert_eq!(
            need("/v2/repository/models/credit/unload"),
            format!("{:?}", Need::Model(Role::Deploy, "credit"))
        );
        assert_eq!(
            need("/v2/models/credit/stats"),
            format!("{:?}", Need::Model(Role::Monitor, "credit"))
        );
        assert_eq!(need("/v3/anything"), format!("{:?}", Need::Key));
        // Fixed segments match raw, as the router matches them: `%73tats` is a model's name.
        assert_eq!(
            need("/v2/models/%73tats"),
            format!("{:?}", Need::Model(Role::Infer, "stats"))
        );
        assert_eq!(
            need("/v1/models/a:b:predict"),
            format!("{:?}", Need::Model(Role::Infer, "a:b"))
        );
    }

    #[test]
    fn a_bucket_gives_its_rate_with_a_one_second_burst() {
        let t0 = std::time::Instant::now();
        let mut b = Bucket::full(10.0, t0);
        let taken = (0..30).filter(|_| b.take(10.0, t0).is_ok()).count();
        assert_eq!(taken, 10, "the burst is one second's worth");
        let wait = b.take(10.0, t0).unwrap_err();
        assert!((wait - 0.1).abs() < 1e-9, "{wait}");
        // Over 5 s of steady calls it gives 5 × 10 more, to the token.
        let mut ok = 0;
        for i in 1..=5000 {
            let now = t0 + std::time::Duration::from_millis(i);
            ok += usize::from(b.take(10.0, now).is_ok());
        }
        assert_eq!(ok, 50);
        // A slow rate still lets one request through.
        let mut slow = Bucket::full(0.5, t0);
        assert!(slow.take(0.5, t0).is_ok() && slow.take(0.5, t0).is_err());
    }

    #[test]
    fn bearer_headers_parse() {
        assert_eq!(bearer(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"bearer   abc "), Some("abc"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(&[0xff, 0xfe]), None);
    }

    proptest! {
        #[test]
        fn hostile_headers_and_paths_never_panic(h in proptest::collection::vec(any::<u8>(), 0..200), p in ".{0,200}") {
            let auth = Auth::on(Vec::new());
            let _ = auth.check(Some(&h), Need::Key);
            let _ = with_need(&p, |n| format!("{n:?}"));
        }
    }
}
