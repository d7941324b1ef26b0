//! The home's side: load an object from its origin, once per key at a time, and keep it.
//!
//! The entry node encodes a [`LoadSpec`] into the opaque [`LoadRequest`]; whichever node is
//! the object's home decodes it and calls [`Loader::load`]. Concurrent loads of one key share
//! one [`Flights`] flight.

use crate::cluster::{ClusterError, Fetch, Fetched, LoadRequest};
use crate::config::ProxyConfig;
use crate::flight::Flights;
use crate::host::Target;
use crate::key::path_of;
use crate::key::ObjectKey;
use crate::metrics::ProxyMetrics;
use crate::object::{make_policy, unix_ms, vary_names, vary_values, CachedObject};
use crate::origin::{OriginClient, OriginError};
use crate::store::ObjectStore;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long a key found unshareable (Set-Cookie, no-store, too large...) is answered with
/// [`ClusterError::Pass`] at once, without asking the origin first (Varnish's hit-for-pass).
const HIT_FOR_PASS: Duration = Duration::from_secs(30);

/// Largest encoded load request a home accepts.
const MAX_SPEC_BYTES: usize = 32 << 10;

/// Request headers forwarded to the home for every load (they commonly select a variant).
pub const FORWARDED: &[&str] = &["accept", "accept-encoding", "accept-language", "user-agent"];

/// What the home needs to load an object: the origin, the normalised URL (its path and query
/// is what the origin is asked for) and the request headers that may select a variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadSpec {
    /// The origin.
    pub target: Target,
    /// The normalised cache key URL.
    pub url: String,
    /// `(lowercase name, value)` of the forwarded request headers.
    pub headers: Vec<(String, String)>,
}

impl LoadSpec {
    /// The opaque form the ring carries.
    pub fn encode(&self) -> LoadRequest {
        LoadRequest(Bytes::from(serde_json::to_vec(self).unwrap_or_default()))
    }

    /// Parses a load request from another node; `None` when it is malformed or oversized.
    pub fn decode(req: &LoadRequest) -> Option<Self> {
        if req.0.len() > MAX_SPEC_BYTES {
            return None;
        }
        serde_json::from_slice(&req.0).ok()
    }

    /// The request headers as a map (invalid entries skipped).
    pub fn header_map(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in &self.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v))
            {
                h.append(n, v);
            }
        }
        h
    }

    /// The request as `http-cache-semantics` sees it (GET of the normalised URL).
    pub fn request_parts(&self) -> http::request::Parts {
        let mut parts = http::Request::get(self.url.as_str())
            .body(())
            .unwrap_or_else(|_| http::Request::new(()))
            .into_parts()
            .0;
        parts.headers = self.header_map();
        parts
    }
}

/// An object the store holds, with the hash it keeps, as the home's answer.
fn from_store((object, hash): (Bytes, [u8; 32])) -> Fetched {
    Fetched { object, hops: 0, level: None, cacheable: true, hash: Some(hash) }
}

/// The origin side of a node: a cheap-to-clone handle.
#[derive(Clone)]
pub struct Loader {
    state: Arc<LoaderState>,
}

struct LoaderState {
    store: ObjectStore,
    origin: OriginClient,
    metrics: Arc<ProxyMetrics>,
    default_ttl: Duration,
    stale_if_error: Duration,
    max_object_bytes: usize,
    loads: Flights<ObjectKey>,
    pass_memo: PassMemo,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader").field("store", &self.state.store).finish_non_exhaustive()
    }
}

/// The keys under hit-for-pass, each with when its mark ends. Bounded: an evicted mark costs
/// one load that finds out again.
struct PassMemo(quick_cache::sync::Cache<ObjectKey, Instant>);

impl PassMemo {
    fn new() -> Self {
        PassMemo(quick_cache::sync::Cache::new(100_000))
    }

    fn mark(&self, key: ObjectKey) {
        self.0.insert(key, Instant::now() + HIT_FOR_PASS);
    }

    fn is_marked(&self, key: &ObjectKey) -> bool {
        match self.0.get(key) {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                self.0.remove(key);
                false
            }
            None => false,
        }
    }

    fn forget(&self, key: &ObjectKey) {
        self.0.remove(key);
    }
}

impl Loader {
    /// A loader keeping what it loads in `store`.
    pub fn new(config: &ProxyConfig, store: ObjectStore) -> Self {
        Loader {
            state: Arc::new(LoaderState {
                store,
                origin: OriginClient::new(config),
                metrics: Arc::new(ProxyMetrics::default()),
                default_ttl: config.default_ttl,
                stale_if_error: config.stale_if_error,
                max_object_bytes: config.max_object_bytes,
                loads: Flights::default(),
                pass_memo: PassMemo::new(),
            }),
        }
    }

    /// The store this loader fills.
    pub fn store(&self) -> &ObjectStore {
        &self.state.store
    }

    /// The origin client (the proxy uses it to pass requests through).
    pub fn origin(&self) -> &OriginClient {
        &self.state.origin
    }

    /// The counters shared with the proxy.
    pub fn metrics(&self) -> Arc<ProxyMetrics> {
        self.state.metrics.clone()
    }

    /// Forgets `key`: its stored copy and any hit-for-pass mark. The node calls this when a
    /// purge reaches the home.
    pub fn purge(&self, key: &ObjectKey) {
        self.state.store.remove(key);
        self.state.pass_memo.forget(key);
    }

    /// Loads `key`: the store's copy while fresh, otherwise from the origin (revalidating a
    /// stale copy; a stale copy is returned only when the origin fails within
    /// stale-if-error). The answer has 0 hops and no level; the ring fills those in.
    pub async fn load(&self, key: ObjectKey, req: LoadRequest) -> Fetch {
        if self.state.pass_memo.is_marked(&key) {
            return Err(ClusterError::Pass);
        }
        let this = self.clone();
        self.state.loads.join(key, move || async move { this.load_now(key, &req).await }).await
    }

    async fn load_now(&self, key: ObjectKey, req: &LoadRequest) -> Fetch {
        let spec = LoadSpec::decode(req).ok_or_else(|| ClusterError::Origin {
            status: 400,
            message: "malformed load request".into(),
        })?;
        let state = &self.state;
        let now_ms = unix_ms(SystemTime::now());
        // The store's decoded form: decoding the bytes again would copy the body too.
        let (old_stored, old) = match state.store.get_all(&key) {
            Some((bytes, hash, decoded)) => (Some((bytes, hash)), decoded),
            None => (None, None),
        };
        if let (Some(o), Some(stored)) = (&old, &old_stored) {
            if !o.is_stale(now_ms) {
                return Ok(from_store(stored.clone()));
            }
        }
        let stale_ok = |o: &CachedObject| {
            o.staleness_ms(unix_ms(SystemTime::now())) <= state.stale_if_error.as_millis() as u64
        };
        let mut headers = spec.header_map();
        if let Some(o) = &old {
            if let Some(v) = o.headers.get(http::header::ETAG) {
                headers.insert(http::header::IF_NONE_MATCH, v.clone());
            }
            if let Some(v) = o.headers.get(http::header::LAST_MODIFIED) {
                headers.insert(http::header::IF_MODIFIED_SINCE, v.clone());
            }
        }
        state.metrics.origin_fetch();
        let path = path_of(&spec.url);
        let res = state.origin.fetch_whole(&spec.target, path, headers, state.max_object_bytes);
        let whole = match res.await {
            Ok(w) => w,
            Err(OriginError::TooLarge) => {
                state.pass_memo.mark(key);
                return Err(ClusterError::Pass);
            }
            Err(e) => {
                state.metrics.origin_error();
                if let (Some(o), Some(stored)) = (&old, old_stored) {
                    if stale_ok(o) {
                        return Ok(from_store(stored));
                    }
                }
                return Err(ClusterError::Origin { status: e.status(), message: e.to_string() });
            }
        };
        let now = SystemTime::now();
        let req_parts = spec.request_parts();
        let (status, headers, body) = match old {
            Some(o) if whole.head.status == StatusCode::NOT_MODIFIED => {
                let mut merged = o.headers.clone();
                for name in whole.head.headers.keys() {
                    if name == http::header::CONTENT_LENGTH || name == http::header::CONTENT_RANGE {
                        continue;
                    }
                    merged.remove(name);
                    for v in whole.head.headers.get_all(name) {
                        merged.append(name.clone(), v.clone());
                    }
                }
                (StatusCode::from_u16(o.status).unwrap_or(StatusCode::OK), merged, o.body.clone())
            }
            // `old` was decoded from `old_stored`, so both are there.
            Some(o) if whole.head.status.is_server_error() && stale_ok(&o) => {
                state.metrics.origin_error();
                if let Some(stored) = old_stored {
                    return Ok(from_store(stored));
                }
                (whole.head.status, whole.head.headers, whole.body)
            }
            _ => (whole.head.status, whole.head.headers, whole.body),
        };
        let policy = make_policy(&req_parts, status, &headers, now, state.default_ttl);
        let names = vary_names(&headers);
        let cacheable = policy.is_storable()
            && names.is_some()
            && !headers.contains_key(http::header::SET_COOKIE)
            && status != StatusCode::PARTIAL_CONTENT;
        let stored_at = unix_ms(now);
        let object = CachedObject {
            status: status.as_u16(),
            vary: names.map(|n| vary_values(&n, &req_parts.headers)).unwrap_or_default(),
            fresh_until: stored_at + policy.time_to_live(now).as_millis() as u64,
            headers,
            body,
            policy: policy.into(),
            stored_at,
            prepared: Default::default(),
        };
        let bytes = object.encode();
        let hash = if cacheable {
            Some(state.store.insert(key, bytes.clone()))
        } else {
            state.store.remove(&key);
            if !status.is_server_error() {
                state.pass_memo.mark(key);
            }
            None
        };
        Ok(Fetched { object: bytes, hops: 0, level: None, cacheable, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trip_and_garbage() {
        let spec = LoadSpec {
            target: Target { host: "o".into(), port: 81, open: false },
            url: "http://o:81/a?b".into(),
            headers: vec![("accept".into(), "*/*".into())],
        };
        assert_eq!(LoadSpec::decode(&spec.encode()), Some(spec.clone()));
        assert_eq!(spec.request_parts().uri.path(), "/a");
        assert_eq!(LoadSpec::decode(&LoadRequest(Bytes::from_static(b"\xff{"))), None);
    }
}
