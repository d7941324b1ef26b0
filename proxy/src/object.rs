//! The cached object (status, headers, body, cache policy) and its wire encoding.
//!
//! Encoding: `BHO2`, then three parts, each after a big-endian `u32` length (the body's runs
//! to the end): the metadata (status, headers, times, the request's `Vary` values) in
//! bincode, the serialised `CachePolicy` as JSON, and the body verbatim. The policy is JSON
//! because `http-cache-semantics` serialises header maps in a self-describing way bincode
//! cannot decode. It is the bulk of the metadata, so decoding only slices it out and parses
//! it when something needs it ([`Policy`]): an entry node decodes every object it fetches,
//! and a plain request needs only the status, headers and times. The body stays raw so large
//! objects are not inflated.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_cache_semantics::{CacheOptions, CachePolicy};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

const MAGIC: &[u8; 4] = b"BHO2";
/// Most bytes of bincode metadata decoded (headers are bounded far below this upstream).
const META_LIMIT: usize = 1 << 20;

/// Statuses that get `default_ttl` when the origin gives no lifetime (Varnish's list, less
/// temporary redirects).
const DEFAULT_TTL_STATUSES: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 410];

/// One stored response.
#[derive(Debug, Clone)]
pub struct CachedObject {
    /// Origin status code.
    pub status: u16,
    /// Origin headers, hop-by-hop headers removed.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// RFC 9111 policy built from the load request and the origin response.
    pub policy: Policy,
    /// When the response arrived (unix ms).
    pub stored_at: u64,
    /// When it stops being fresh (unix ms); the stale-while-revalidate and stale-if-error
    /// windows count from here.
    pub fresh_until: u64,
    /// `(header, value)` of each `Vary` header in the request the object was loaded for.
    pub vary: Vec<(String, String)>,
    /// What every hit on this object would otherwise work out again, made on first use from
    /// the fields as they are then (a stored object is shared and no longer changes).
    pub(crate) prepared: Prepared,
}

/// An object's cache policy: built by the loader, or kept as its JSON by
/// [`CachedObject::decode`] and parsed on first use (`None` if it does not parse).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    raw: Option<Bytes>,
    parsed: OnceLock<Option<Box<CachePolicy>>>,
}

impl From<CachePolicy> for Policy {
    fn from(policy: CachePolicy) -> Self {
        Policy { raw: None, parsed: OnceLock::from(Some(Box::new(policy))) }
    }
}

impl Policy {
    /// The policy, parsed on the first call for a decoded object.
    pub fn get(&self) -> Option<&CachePolicy> {
        let parse = || {
            let raw = self.raw.as_ref()?;
            serde_json::from_slice::<CachePolicy>(raw).ok().map(Box::new)
        };
        self.parsed.get_or_init(parse).as_deref()
    }

    /// Its JSON, for [`CachedObject::encode`]: the raw form kept, else the parsed policy's.
    fn json(&self) -> Option<Cow<'_, [u8]>> {
        match (&self.raw, self.parsed.get()) {
            (Some(raw), _) => Some(Cow::Borrowed(raw)),
            (None, Some(Some(policy))) => serde_json::to_vec(policy).ok().map(Cow::Owned),
            (None, _) => None,
        }
    }
}

/// Per-object results a hit reuses: the `Vary` names and the head of a plain hit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prepared {
    vary_names: OnceLock<Option<Vec<String>>>,
    /// The headers of a plain `HIT` (no conditional or range request), each hit setting only
    /// `Age`, and the token of the responder that made them: they carry its node's name.
    pub(crate) hit_head: OnceLock<(u64, HeaderMap)>,
}

/// Why bytes did not decode to an object. Nothing is stored; the caller drops the bytes.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// Too short, the wrong magic, or a part longer than the bytes.
    #[error("not an encoded object")]
    Framing,
    /// The metadata does not decode.
    #[error("object metadata: {0}")]
    Meta(#[from] bincode::error::DecodeError),
    /// A header name or value that HTTP does not allow, or a bad status.
    #[error("invalid header or status in object")]
    Invalid,
}

/// What the metadata part holds, borrowing its strings from the bytes being decoded.
#[derive(Serialize, Deserialize)]
struct Meta<'a> {
    status: u16,
    #[serde(borrow)]
    headers: Vec<(&'a str, &'a str)>,
    stored_at: u64,
    fresh_until: u64,
    #[serde(borrow)]
    vary: Vec<(&'a str, &'a str)>,
}

fn meta_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<META_LIMIT>()
}

/// Splits a `u32`-length-prefixed part off the front of `bytes`.
fn part(bytes: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let (len, rest) = bytes.split_at_checked(4).ok_or(DecodeError::Framing)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    rest.split_at_checked(len).ok_or(DecodeError::Framing)
}

impl CachedObject {
    /// The wire form (stored in the [`ObjectStore`](crate::ObjectStore), moved by the ring).
    pub fn encode(&self) -> Bytes {
        let meta = Meta {
            status: self.status,
            headers: self
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
                .collect(),
            stored_at: self.stored_at,
            fresh_until: self.fresh_until,
            vary: self.vary.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
        };
        // Plain data within the limit encodes; an empty meta would only fail decoding.
        let meta = bincode::serde::encode_to_vec(&meta, meta_config()).unwrap_or_default();
        // A policy that cannot serialise leaves one that does not parse: the object is then
        // never served with a made-up policy (see [`Policy::get`]).
        let policy = self.policy.json().unwrap_or(Cow::Borrowed(b"null"));
        let len = 16 + meta.len() + policy.len() + self.body.len();
        let mut out = BytesMut::with_capacity(len);
        out.put_slice(MAGIC);
        for part in [&meta[..], &policy[..]] {
            out.put_u32(part.len() as u32);
            out.put_slice(part);
        }
        out.put_u32(self.body.len() as u32);
        out.put_slice(&self.body);
        out.freeze()
    }

    /// Parses the wire form; never panics on arbitrary input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_with(bytes, Bytes::copy_from_slice)
    }

    /// Parses the wire form held in `bytes`; the body and policy are slices of them (no copy).
    pub fn decode_shared(bytes: &Bytes) -> Result<Self, DecodeError> {
        Self::decode_with(bytes, |part| bytes.slice_ref(part))
    }

    fn decode_with<'a>(
        bytes: &'a [u8],
        keep: impl Fn(&'a [u8]) -> Bytes,
    ) -> Result<Self, DecodeError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(DecodeError::Framing)?;
        let (meta_bytes, rest) = part(rest)?;
        let (policy, rest) = part(rest)?;
        let (body, rest) = part(rest)?;
        if !rest.is_empty() {
            return Err(DecodeError::Framing);
        }
        let (meta, read): (Meta, usize) =
            bincode::serde::borrow_decode_from_slice(meta_bytes, meta_config())?;
        if read != meta_bytes.len() {
            return Err(DecodeError::Framing);
        }
        StatusCode::from_u16(meta.status).map_err(|_| DecodeError::Invalid)?;
        let mut headers = HeaderMap::with_capacity(meta.headers.len());
        for (n, v) in meta.headers {
            let n = HeaderName::from_bytes(n.as_bytes()).map_err(|_| DecodeError::Invalid)?;
            let v = HeaderValue::from_str(v).map_err(|_| DecodeError::Invalid)?;
            headers.append(n, v);
        }
        Ok(CachedObject {
            status: meta.status,
            headers,
            body: keep(body),
            policy: Policy { raw: Some(keep(policy)), parsed: OnceLock::new() },
            stored_at: meta.stored_at,
            fresh_until: meta.fresh_until,
            vary: meta.vary.into_iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect(),
            prepared: Prepared::default(),
        })
    }

    /// Bytes of metadata in an encoded object (0 when it is not one): about what its decoded
    /// form holds beyond the body.
    pub fn meta_len(bytes: &[u8]) -> usize {
        let parts = || {
            let (meta, rest) = part(bytes.strip_prefix(MAGIC)?).ok()?;
            let (policy, _) = part(rest).ok()?;
            Some(meta.len() + policy.len())
        };
        parts().unwrap_or(0)
    }

    /// Whether `req_headers` select this variant (always, for a response without `Vary`).
    pub fn vary_matches(&self, req_headers: &HeaderMap) -> bool {
        let names = self.prepared.vary_names.get_or_init(|| vary_names(&self.headers));
        match names.as_deref() {
            Some([]) => self.vary.is_empty(),
            Some(names) => vary_values(names, req_headers) == self.vary,
            None => false,
        }
    }

    /// How long the response has been in caches at `now`: its `Age` header when stored, plus
    /// the time since (what `CachePolicy::age` gives, without parsing the policy).
    pub fn age(&self, now: SystemTime) -> Duration {
        let initial = self.header("age").and_then(|v| v.parse().ok()).unwrap_or(0);
        let resident = unix_ms(now).saturating_sub(self.stored_at);
        Duration::from_secs(initial) + Duration::from_millis(resident)
    }

    /// Milliseconds past freshness at `now_ms` (0 while fresh).
    pub fn staleness_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.fresh_until)
    }

    /// Whether the object is past its freshness lifetime at `now_ms`.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        now_ms >= self.fresh_until
    }

    /// Header value as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Lowercased header names the response varies on; `None` for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for v in headers.get_all(http::header::VARY) {
        for n in v.to_str().unwrap_or("*").split(',') {
            let n = n.trim().to_ascii_lowercase();
            if n == "*" {
                return None;
            }
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Some(names)
}

/// The request's values for `names` (empty string when absent), in order.
pub fn vary_values(names: &[String], req_headers: &HeaderMap) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| {
            let vals: Vec<&str> =
                req_headers.get_all(n.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
            (n.clone(), vals.join(", "))
        })
        .collect()
}

/// Builds the shared-cache policy, giving `default_ttl` to a response that has no explicit
/// lifetime (no `max-age`, `s-maxage` or `Expires`) and a status cacheable by default.
pub fn make_policy(
    req: &http::request::Parts,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
    default_ttl: Duration,
) -> CachePolicy {
    let mut res = http::Response::new(());
    *res.status_mut() = status;
    *res.headers_mut() = headers.clone();
    let cc: Vec<&str> = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let cc = cc.join(",").to_ascii_lowercase();
    let explicit =
        cc.contains("max-age") || cc.contains("s-maxage") || headers.contains_key("expires");
    if !explicit && DEFAULT_TTL_STATUSES.contains(&status.as_u16()) {
        let v = if cc.trim().is_empty() {
            format!("max-age={}", default_ttl.as_secs())
        } else {
            format!("{cc}, max-age={}", default_ttl.as_secs())
        };
        if let Ok(v) = HeaderValue::from_str(&v) {
            res.headers_mut().insert(http::header::CACHE_CONTROL, v);
        }
    }
    CachePolicy::new_options(req, &res, now, CacheOptions::default())
}

/// Unix milliseconds of `t`.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .filter(|s| !s.is_empty())
        .collect();
    for n in named {
        headers.remove(n.as_str());
    }
    for n in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CachedObject {
        let req = http::Request::get("http://o:80/x").body(()).unwrap().into_parts().0;
        let mut headers = HeaderMap::new();
        headers.insert("etag", HeaderValue::from_static("\"v1\""));
        headers.insert("vary", HeaderValue::from_static("Accept-Language"));
        let now = SystemTime::now();
        let policy = make_policy(&req, StatusCode::OK, &headers, now, Duration::from_secs(60));
        CachedObject {
            status: 200,
            headers,
            body: Bytes::from_static(b"hello\x00world"),
            policy: policy.into(),
            stored_at: unix_ms(now),
            fresh_until: unix_ms(now) + 60_000,
            vary: vec![("accept-language".into(), String::new())],
            prepared: Prepared::default(),
        }
    }

    #[test]
    fn round_trip_and_default_ttl() {
        let o = sample();
        let d = CachedObject::decode(&o.encode()).unwrap();
        assert_eq!(d.body, o.body);
        let wire = o.encode();
        let shared = CachedObject::decode_shared(&wire).unwrap();
        assert_eq!(shared.body, o.body);
        assert_eq!(shared.body.as_ptr(), wire[wire.len() - o.body.len()..].as_ptr(), "a slice");
        let policy = shared.policy.raw.as_ref().expect("the policy kept raw");
        assert!(wire.as_ptr_range().contains(&policy.as_ptr()), "the policy is a slice too");
        assert_eq!(CachedObject::meta_len(&wire), wire.len() - 16 - o.body.len());
        assert_eq!(d.header("etag"), Some("\"v1\""));
        let policy = d.policy.get().expect("the policy parses");
        assert!(policy.is_storable());
        let ttl = policy.time_to_live(SystemTime::now()).as_secs();
        assert!((55..=60).contains(&ttl), "{ttl}");
        assert!(d.vary_matches(&HeaderMap::new()));
        let mut fr = HeaderMap::new();
        fr.insert("accept-language", HeaderValue::from_static("fr"));
        assert!(!d.vary_matches(&fr));
    }

    /// `Age` from the stored header and time equals the policy's own, which a decoded object
    /// parses only when asked.
    #[test]
    fn age_without_the_policy_is_the_policy_s() {
        let req = http::Request::get("http://o:80/x").body(()).unwrap().into_parts().0;
        let mut headers = HeaderMap::new();
        headers.insert("age", HeaderValue::from_static("30"));
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let policy = make_policy(&req, StatusCode::OK, &headers, at, Duration::from_secs(60));
        let o = CachedObject {
            status: 200,
            headers,
            body: Bytes::new(),
            policy: policy.into(),
            stored_at: unix_ms(at),
            fresh_until: unix_ms(at) + 60_000,
            vary: Vec::new(),
            prepared: Prepared::default(),
        };
        let d = CachedObject::decode(&o.encode()).unwrap();
        for ms in [0, 999, 1_000, 59_999, 3_600_123] {
            let now = at + Duration::from_millis(ms);
            let parsed = d.policy.get().expect("the policy parses");
            assert_eq!(d.age(now), parsed.age(now), "{ms} ms after");
            assert_eq!(o.age(now), d.age(now));
        }
        assert_eq!(d.age(at + Duration::from_millis(1_500)).as_secs(), 31);
    }

    #[test]
    fn garbage_never_panics() {
        let good = sample().encode();
        for cut in 0..good.len().min(400) {
            let _ = CachedObject::decode(&good[..cut]);
        }
        let mut seed = 7u64;
        for _ in 0..500 {
            let mut b = good.to_vec();
            for _ in 0..4 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let i = (seed >> 33) as usize % b.len();
                b[i] = (seed >> 24) as u8;
            }
            let _ = CachedObject::decode(&b);
        }
        assert!(CachedObject::decode(b"BHO2\xff\xff\xff\xff").is_err());
    }

    #[test]
    fn vary_star_and_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert("vary", HeaderValue::from_static("accept, *"));
        assert_eq!(vary_names(&h), None);
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("5"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }
}
